#!/usr/bin/env python3
"""A small server for test_restore_handover.sh, run under the shim.

Python creates every descriptor close-on-exec, as most programs do.  It
opens an epoll set watching what the arguments ask for, prints "ready"
and the TCP port, then sleeps until killed (at most 120 s).

  --tcp             a TCP listener on 127.0.0.1 (port chosen by the kernel)
  --conn            with --tcp: a connection to it, its accepted end watched
  --reuseport PORT  a TCP listener on 127.0.0.1:PORT with SO_REUSEPORT
  --unix PATH       a unix stream listener at PATH
  --mode OCTAL      chmod of the unix socket file after bind
  --rename PATH     rename the unix socket file to PATH after bind
  --unlink          remove the unix socket file after bind
  --high FD         also watch an eventfd dup'ed to FD
  --other FD        keep /dev/null open at FD, not watched
"""
import argparse
import os
import select
import socket
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--tcp", action="store_true")
ap.add_argument("--conn", action="store_true")
ap.add_argument("--reuseport", type=int)
ap.add_argument("--unix")
ap.add_argument("--mode")
ap.add_argument("--rename")
ap.add_argument("--unlink", action="store_true")
ap.add_argument("--high", type=int)
ap.add_argument("--other", type=int)
a = ap.parse_args()

keep = []
ep = select.epoll()
port = 0
if a.other is not None:
    fd = os.open("/dev/null", os.O_RDONLY)
    os.dup2(fd, a.other, inheritable=False)
    os.close(fd)
if a.tcp:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    port = s.getsockname()[1]
    ep.register(s.fileno(), select.EPOLLIN)
    keep.append(s)
    print("fd listener", s.fileno())
    if a.conn:
        c = socket.create_connection(("127.0.0.1", port))
        acc, _ = s.accept()
        ep.register(acc.fileno(), select.EPOLLIN)
        keep += [c, acc]
        print("fd accepted", acc.fileno())
if a.unix:
    u = socket.socket(socket.AF_UNIX)
    u.bind(a.unix)
    if a.mode:
        os.chmod(a.unix, int(a.mode, 8))
    if a.rename:
        os.rename(a.unix, a.rename)
    if a.unlink:
        os.unlink(a.unix)
    u.listen(4)
    ep.register(u.fileno(), select.EPOLLIN)
    keep.append(u)
    print("fd unix", u.fileno())
if a.reuseport:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", a.reuseport))
    s.listen(16)
    port = a.reuseport
    ep.register(s.fileno(), select.EPOLLIN)
    keep.append(s)
if a.high is not None:
    e = os.eventfd(0, os.EFD_CLOEXEC)
    os.dup2(e, a.high, inheritable=False)
    os.close(e)
    ep.register(a.high, select.EPOLLIN | select.EPOLLET)
print("fd epoll", ep.fileno())
print("ready", port, flush=True)
for _ in range(1200):
    time.sleep(0.1)
