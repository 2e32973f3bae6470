#!/usr/bin/env python3
"""Bounded client load on a server of 127.0.0.1, checking every answer.

usage: real_load.py KIND PORT [options]
  KIND  http      GET /PATH?c=CLIENT&i=N; the answer must be 200 with the
                  expected body (--body-file, or --body-echo: "PREFIX PATH\\n"
                  where PATH is the request's path and query)
        memcache  set KEY VALUE then get KEY: STORED, then exactly VALUE
        echo      a line, and the same line back (the asyncio test server)
        count     one request asking the server how many it served:
                  http GET /count, memcache stats (cmd_set get_hits),
                  echo "STATS"; prints the answer
options:
  --clients K     concurrent clients, each on its own connection (4)
  --requests N    at most N requests in all (2000)
  --seconds S     at most S seconds; running out is an error (30)
  --stop FILE     stop early (not an error) once FILE exists
  --reconnect M   each client opens a new connection every M requests (20)
  --body-file F / --body-echo PREFIX   (http) the expected body
Every socket operation has a 5 s timeout.  Prints one line
"KIND: R requests, E errors, C connections, T s" (and the first errors);
exit status 0 when every answer was right and R > 0.
"""
import os
import socket
import sys
import threading
import time

TIMEOUT = 5.0


class Shared:
    def __init__(self, total, seconds, stop):
        self.lock = threading.Lock()
        self.left = total
        self.done = 0
        self.errors = []
        self.conns = 0
        self.deadline = time.monotonic() + seconds
        self.stop = stop
        self.timed_out = False

    def take(self):
        """True when the caller may send one more request."""
        if self.stop and os.path.exists(self.stop):
            return False
        if time.monotonic() > self.deadline:
            with self.lock:
                self.timed_out = True
            return False
        with self.lock:
            if self.left <= 0 or len(self.errors) > 20:
                return False
            self.left -= 1
            return True

    def ok(self):
        with self.lock:
            self.done += 1

    def error(self, msg):
        with self.lock:
            self.errors.append(msg)

    def connected(self):
        with self.lock:
            self.conns += 1


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    return s


class Reader:
    """Buffered reads from a socket with a bound on what is kept."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server")
        self.buf += data
        if len(self.buf) > 1 << 20:
            raise ValueError("answer larger than 1 MiB")

    def line(self):
        while b"\r\n" not in self.buf and b"\n" not in self.buf:
            self.fill()
        i = self.buf.find(b"\n")
        out, self.buf = self.buf[:i + 1], self.buf[i + 1:]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def http_get(sock, rd, path, close):
    hdr = "Connection: close\r\n" if close else ""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{hdr}\r\n"
                 .encode())
    status = rd.line().decode("latin-1").strip()
    headers = {}
    while True:
        line = rd.line().decode("latin-1").strip()
        if not line:
            break
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = rd.exact(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            n = int(rd.line().strip(), 16)
            body += rd.exact(n)
            rd.line()
            if n == 0:
                break
    else:
        raise ValueError(f"answer without length: {headers}")
    return status, body, headers.get("connection", "").lower() == "close"


def client(kind, cid, port, sh, opts):
    sock = rd = None
    i = 0
    while sh.take():
        i += 1
        try:
            if sock is None:
                sock = connect(port)
                rd = Reader(sock)
                sh.connected()
            last = i % opts["reconnect"] == 0
            if kind == "http":
                path = f"/r?c={cid}&i={i}"
                status, body, closed = http_get(sock, rd, path, last)
                want = opts["body"] if opts["body"] is not None else \
                    (opts["echo"] + " " + path + "\n").encode()
                if not status.startswith("HTTP/1.1 200"):
                    raise ValueError(f"status '{status}' for {path}")
                if body != want:
                    raise ValueError(f"body {body[:80]!r} for {path}, expected {want[:80]!r}")
                last = last or closed
            elif kind == "memcache":
                key = f"c{cid}-{i}"
                val = (f"{key}:" + "v" * (i % 200)).encode()
                sock.sendall(f"set {key} 0 0 {len(val)}\r\n".encode() +
                             val + b"\r\n")
                got = rd.line()
                if got != b"STORED\r\n":
                    raise ValueError(f"set {key}: {got!r}")
                sock.sendall(f"get {key}\r\n".encode())
                head = rd.line()
                if head != f"VALUE {key} 0 {len(val)}\r\n".encode():
                    raise ValueError(f"get {key}: {head!r}")
                got = rd.exact(len(val) + 2)
                end = rd.line()
                if got != val + b"\r\n" or end != b"END\r\n":
                    raise ValueError(f"get {key}: value {got[:40]!r} {end!r}")
            elif kind == "echo":
                msg = f"c{cid} line {i} " + "x" * (i % 300) + "\n"
                sock.sendall(msg.encode())
                got = rd.line()
                if got != msg.encode():
                    raise ValueError(f"echo: sent {msg[:40]!r}, got {got[:40]!r}")
            sh.ok()
            if last:
                sock.close()
                sock = None
        except (OSError, ValueError, EOFError) as e:
            sh.error(f"client {cid} request {i}: {type(e).__name__}: {e}")
            if sock is not None:
                sock.close()
            sock = None
    if sock is not None:
        sock.close()


def count(kind, port):
    s = connect(port)
    rd = Reader(s)
    if kind == "http":
        status, body, _ = http_get(s, rd, "/count", True)
        print(body.decode().strip())
    elif kind == "memcache":
        s.sendall(b"stats\r\n")
        stats = {}
        while True:
            line = rd.line().decode().strip()
            if line == "END":
                break
            parts = line.split()
            if len(parts) == 3 and parts[0] == "STAT":
                stats[parts[1]] = parts[2]
        print(f"cmd_set {stats.get('cmd_set')} get_hits {stats.get('get_hits')} get_misses {stats.get('get_misses')}")
    elif kind == "echo":
        s.sendall(b"STATS\n")
        print(rd.line().decode().strip())
    s.close()
    return 0


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        print(__doc__)
        return 2
    kind, port = args[0], int(args[1])
    if args[0] == "count":
        if len(args) != 3:
            print(__doc__)
            return 2
        return count(args[2], port)
    opts = {"clients": 4, "requests": 2000, "seconds": 30, "stop": None,
            "reconnect": 20, "body": None, "echo": None}
    i = 2
    while i + 1 < len(args):
        k, v = args[i], args[i + 1]
        if k == "--clients":
            opts["clients"] = int(v)
        elif k == "--requests":
            opts["requests"] = int(v)
        elif k == "--seconds":
            opts["seconds"] = float(v)
        elif k == "--stop":
            opts["stop"] = v
        elif k == "--reconnect":
            opts["reconnect"] = max(1, int(v))
        elif k == "--body-file":
            with open(v, "rb") as f:
                opts["body"] = f.read()
        elif k == "--body-echo":
            opts["echo"] = v
        else:
            print(f"unknown option {k}")
            return 2
        i += 2
    if kind not in ("http", "memcache", "echo") or i != len(args) or \
            (kind == "http" and opts["body"] is None and opts["echo"] is None):
        print(__doc__)
        return 2
    sh = Shared(opts["requests"], opts["seconds"], opts["stop"])
    t0 = time.monotonic()
    threads = [threading.Thread(target=client,
                                args=(kind, c, port, sh, opts))
               for c in range(opts["clients"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sh.timed_out:
        sh.errors.append(f"not finished within {opts['seconds']} s")
    print(f"{kind}: {sh.done} requests, {len(sh.errors)} errors, {sh.conns} connections, {time.monotonic() - t0:.1f} s")
    for e in sh.errors[:10]:
        print("  " + e)
    return 0 if not sh.errors and sh.done > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
