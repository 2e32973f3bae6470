#!/usr/bin/env python3
"""Files with every status flag, for test_restore_flags.sh (run under the shim).

One epoll set watches:
  packet  a pipe made with pipe2(O_DIRECT): packet mode, O_DIRECT on its
          write end (both ends watched)
  append  a pipe whose write end has O_APPEND|O_NONBLOCK (F_SETFL), and
          whose read end has O_DIRECT (F_SETFL: packet mode is the write
          end's, but the flag shows) (both ends watched)
  async   a TCP listener on 127.0.0.1 with O_ASYNC|O_NONBLOCK (no owner)
  noatime a UDP socket with O_NOATIME|O_APPEND
  efd     an eventfd with O_NOATIME|O_APPEND (O_NOATIME on an anonymous
          inode needs CAP_FOWNER: run as root)
Prints "fd NAME N" for each (two numbers for a pipe: read, write end),
"ready", then sleeps until killed (at most 120 s).
"""
import fcntl
import os
import select
import socket
import time


def setfl(fd, flags):
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | flags)


ep = select.epoll()
keep = []
pr, pw = os.pipe2(os.O_CLOEXEC | os.O_DIRECT)
ar, aw = os.pipe2(os.O_CLOEXEC)
setfl(aw, os.O_APPEND | os.O_NONBLOCK)
setfl(ar, os.O_DIRECT)
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.bind(("127.0.0.1", 0))
ls.listen(8)
setfl(ls.fileno(), os.O_ASYNC | os.O_NONBLOCK)
us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
us.bind(("127.0.0.1", 0))
setfl(us.fileno(), os.O_NOATIME | os.O_APPEND)
efd = os.eventfd(0, os.EFD_CLOEXEC)
setfl(efd, os.O_NOATIME | os.O_APPEND)
keep += [ls, us]
for fd, ev in ((pr, select.EPOLLIN), (pw, select.EPOLLOUT),
               (ar, select.EPOLLIN), (aw, select.EPOLLOUT),
               (ls.fileno(), select.EPOLLIN), (us.fileno(), select.EPOLLIN),
               (efd, select.EPOLLIN)):
    ep.register(fd, ev)
print("fd epoll %d" % ep.fileno())
print("fd packet %d %d" % (pr, pw))
print("fd append %d %d" % (ar, aw))
print("fd async %d" % ls.fileno())
print("fd noatime %d" % us.fileno())
print("fd efd %d" % efd)
print("ready", flush=True)
time.sleep(120)
