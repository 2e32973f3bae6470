#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Run under the shim by test_udp_connected.sh: an epoll set watches a UDP
# socket bound to 127.0.0.1 and connected to another (bound, watched too,
# not connected), and an IPv6 one connected to ::1 when the host has it.
# Prints "FD NAME LOCAL PEER" per socket (getsockname, getpeername: the
# kernel's word), then "ready", and sleeps (at most 60 s).
import select
import socket
import time

ep = select.epoll()
peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
peer.bind(("127.0.0.1", 0))
conn = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
conn.bind(("127.0.0.1", 0))
conn.connect(peer.getsockname())
socks = [("peer", peer), ("conn", conn)]
try:
    p6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    p6.bind(("::1", 0))
    c6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    c6.connect(p6.getsockname())
    socks.append(("conn6", c6))
except OSError:
    pass  # no IPv6 loopback here
for name, s in socks:
    ep.register(s.fileno(), select.EPOLLIN)


def text(a):
    return ("[%s]:%d" if ":" in a[0] else "%s:%d") % a[:2]


for name, s in socks:
    try:
        p = text(s.getpeername())
    except OSError:
        p = "none"
    print(s.fileno(), name, text(s.getsockname()), p, flush=True)
print("ready", flush=True)
time.sleep(60)
