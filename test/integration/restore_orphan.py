#!/usr/bin/env python3
"""Watched files no fd of the process holds, for test_restore_orphan.sh.

Run under the shim.  One epoll set watches, each under a number that is
then closed, so that only a forked child (which sleeps, holding them all)
keeps the files, and with them the watches, alive:
  40  an eventfd made with EFD_SEMAPHORE|EFD_NONBLOCK, count 5
  41  a timerfd on CLOCK_MONOTONIC, TFD_NONBLOCK
  42  a signalfd for SIGUSR2 (blocked), SFD_NONBLOCK
  43  the write end of a pipe (EPOLLOUT)
  44  the read end of that pipe
and a second set watches the eventfd too, under 40 (EPOLLOUT).
The kernel's view of such a file is its inode alone: the first three share
the anonymous inode, and a pipe's inode does not tell its end.
Prints "fd epoll N", "fd epoll2 N", "child PID", "ready", then sleeps (at most 120 s).
"""
import ctypes
import os
import select
import signal
import time

libc = ctypes.CDLL(None, use_errno=True)


def check(ret, what):
    if ret < 0:
        raise OSError(ctypes.get_errno(), what)
    return ret


ep = select.epoll()
efd = os.eventfd(5, os.EFD_SEMAPHORE | os.EFD_NONBLOCK)
tfd = check(libc.timerfd_create(1, os.O_NONBLOCK), "timerfd_create")
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
mask = ctypes.create_string_buffer(128)
libc.sigemptyset(mask)
libc.sigaddset(mask, int(signal.SIGUSR2))
sfd = check(libc.signalfd(-1, mask, os.O_NONBLOCK), "signalfd")
pr, pw = os.pipe()
ep2 = select.epoll()
made = {40: efd, 41: tfd, 42: sfd, 43: pw, 44: pr}
for num, fd in made.items():
    os.dup2(fd, num)
    ep.register(num, select.EPOLLOUT if num == 43 else select.EPOLLIN)
ep2.register(40, select.EPOLLOUT)
child = os.fork()
if child == 0:
    time.sleep(120)
    os._exit(0)
for fd in list(made) + list(made.values()):
    os.close(fd)
print("fd epoll %d" % ep.fileno())
print("fd epoll2 %d" % ep2.fileno())
print("child %d" % child)
print("ready", flush=True)
time.sleep(120)
