#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Run under the shim by test_tcp_ended.sh: an epoll set watches a TCP
# listener (127.0.0.1, SO_REUSEADDR) and sockets whose connections are in
# every shape the listener's clients leave them:
#   reset     accepted, the client closed with SO_LINGER 0 (RST): CLOSE
#   timewait  accepted, shut down here, then closed by the client: the
#             connection is in TIME_WAIT, the socket in CLOSE
#   closewait accepted, closed by the client (FIN): CLOSE_WAIT, connected
#   client    connected here to the listener, reset by the server side
#   fresh     bound to 127.0.0.1:0, never connected: restorable
# Prints "FD NAME PEER" per socket (PEER: getpeername's address, or its
# errno name: the kernel's word), then "ready", and sleeps (at most 60 s).
import errno
import select
import socket
import struct
import time

ep = select.epoll()
lst = socket.socket()
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", 0))
lst.listen(16)
ep.register(lst.fileno(), select.EPOLLIN)
addr = lst.getsockname()
LINGER0 = struct.pack("ii", 1, 0)
keep = []


def pair():
    c = socket.create_connection(addr)
    a, _ = lst.accept()
    keep.extend((c, a))
    return c, a


c, reset = pair()
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
c.close()
c, timewait = pair()
timewait.shutdown(socket.SHUT_WR)
c.recv(1)
c.close()
c, closewait = pair()
c.close()
client, a = pair()
a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
a.close()
fresh = socket.socket()
fresh.bind(("127.0.0.1", 0))
time.sleep(0.2)  # the FIN of timewait's client, on loopback
for name, s in (("reset", reset), ("timewait", timewait),
                ("closewait", closewait), ("client", client),
                ("fresh", fresh)):
    ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    try:
        peer = "%s:%d" % s.getpeername()
    except OSError as e:
        peer = errno.errorcode[e.errno]
    print(s.fileno(), name, peer, flush=True)
print("ready", flush=True)
time.sleep(60)
