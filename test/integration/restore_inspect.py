#!/usr/bin/env python3
"""Run by `epollcr restore --exec`: print what this process was given.

One line per open descriptor of /proc/self/fd (but the one listing it):
  fd N LINK cloexec=0|1
(cloexec from the `flags:` of /proc/self/fdinfo/N, octal, O_CLOEXEC is
02000000), one line per watch of each epoll fd:
  watch EPFD TFD EVENTS
and the environment variable:
  env EPOLLCR_RESTORED_FDS=...
"""
import os

fds = []
for name in os.listdir("/proc/self/fd"):
    try:
        link = os.readlink("/proc/self/fd/" + name)
        info = open("/proc/self/fdinfo/" + name).read()
    except OSError:
        continue
    fds.append((int(name), link, info))
for fd, link, info in sorted(fds):
    flags = 0
    for line in info.splitlines():
        if line.startswith("flags:"):
            flags = int(line.split()[1], 8)
    print("fd %d %s cloexec=%d" % (fd, link, 1 if flags & 0o2000000 else 0))
    for line in info.splitlines():
        if line.startswith("tfd:"):
            f = line.split()
            print("watch %d %s %s" % (fd, f[1], f[3]))
print("env EPOLLCR_RESTORED_FDS=%s" % os.environ.get("EPOLLCR_RESTORED_FDS", "(unset)"))
