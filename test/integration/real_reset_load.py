#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Clients that reset their connections: the shape of issue 12.3.

usage: real_reset_load.py PORT [--batch K] [--seconds S] [--stop FILE]
  Rounds of K (50) connections to 127.0.0.1:PORT, each sending one HTTP
  GET, then all closed with SO_LINGER 0 (an RST each): the server is left
  with accepted sockets whose peer reset them until it reads the reset.
  Stops when FILE exists or after S (30) seconds.  Every socket operation
  has a 5 s timeout.  Prints "reset: N connections, E errors"; exit
  status 0 when N > 0 and E == 0.
"""
import os
import socket
import struct
import sys
import time

args = sys.argv[1:]
if not args or not args[0].isdigit():
    print(__doc__, file=sys.stderr)
    sys.exit(2)
port = int(args[0])
opts = dict(zip(args[1::2], args[2::2]))
batch = int(opts.get("--batch", 50))
deadline = time.monotonic() + float(opts.get("--seconds", 30))
stop = opts.get("--stop")
LINGER0 = struct.pack("ii", 1, 0)
n = errors = 0
while time.monotonic() < deadline and not (stop and os.path.exists(stop)):
    conns = []
    for _ in range(batch):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /reset HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            conns.append(s)
        except OSError as e:
            errors += 1
            if errors <= 5:
                print(f"reset: {e}", file=sys.stderr)
    for s in conns:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        s.close()
        n += 1
print(f"reset: {n} connections, {errors} errors")
sys.exit(0 if n and not errors else 1)
