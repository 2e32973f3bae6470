#!/usr/bin/env python3
# fake_recorder.py MODE DIR SIG [IMAGE]: a hostile "program" for `epollcr
# dump`.  Maps DIR/libepollcr.so (so that dump finds "the shim" in its
# maps), blocks SIG, prints "ready", waits for one dump request, connects
# to the requester's socket (found in /proc/net/unix) and streams, until
# the reader hangs up or 30 s pass:
#   garbage  - random bytes
#   endless  - IMAGE (a real one) without its END record, then its last
#              DIAG record again and again with a 4000-byte message: valid
#              records for ever
# Prints "sent N" (bytes accepted by the socket) and exits 0.
import mmap, os, signal, socket, sys, time

mode, workdir, sig = sys.argv[1], sys.argv[2], int(sys.argv[3])
lib = open(os.path.join(workdir, "libepollcr.so"), "wb+")
lib.write(b"\0" * 4096)
lib.flush()
keep = mmap.mmap(lib.fileno(), 4096)
signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
print("ready", flush=True)
signal.sigwaitinfo({sig})

prefix = "@epollcr-dump-%d-" % os.getpid()
name = None
for _ in range(100):
    for line in open("/proc/net/unix"):
        f = line.split()
        if len(f) >= 8 and f[7].startswith(prefix):
            name = "\0" + f[7][1:]
    if name:
        break
    time.sleep(0.01)
if not name:
    print("no request socket", flush=True)
    sys.exit(1)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(name)


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf, pos):
    v = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        v |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return v, pos


def records(img):
    pos = 32
    while pos < len(img):
        t = int.from_bytes(img[pos:pos + 4], "little")
        n = int.from_bytes(img[pos + 4:pos + 8], "little")
        yield t, img[pos:pos + 8 + n]
        pos += 8 + n


if mode == "garbage":
    chunk = os.urandom(65536)
    body = None
else:
    img = open(sys.argv[4], "rb").read()
    recs = list(records(img))
    head = img[:32] + b"".join(r for t, r in recs[:-1])
    diag = [r for t, r in recs if t == 7][-1]  # IMAGE_REC_DIAG
    payload = diag[8:]
    pos = 0
    for _ in range(5):  # severity, code, epfd, tfd, bt
        _, pos = read_varint(payload, pos)
    plen, pos = read_varint(payload, pos)  # path
    pos += plen
    fat = payload[:pos] + varint(4000) + b"m" * 4000
    rec = (7).to_bytes(4, "little") + len(fat).to_bytes(4, "little") + fat
    chunk = rec * 16
    body = head

sent = 0
end = time.monotonic() + 30
try:
    if body:
        s.sendall(body)
        sent += len(body)
    while time.monotonic() < end:
        sent += s.send(chunk)
except OSError:
    pass
print("sent", sent, flush=True)
