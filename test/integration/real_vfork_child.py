#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Run under the shim by test_vfork.sh: an epoll set watches a TCP listener
# (backlog 77), then subprocess runs a child with close_fds=True three
# times (CPython forks with vfork and the child calls close_range, in the
# parent's memory).  Prints "ready FD" and sleeps until killed (at most
# 60 s).
import select
import socket
import subprocess
import time

s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(77)
ep = select.epoll()
ep.register(s.fileno(), select.EPOLLIN)
for _ in range(3):
    subprocess.run(["true"], close_fds=True, check=True)
print("ready", s.fileno(), flush=True)
time.sleep(60)
