#!/usr/bin/env python3
"""Compare an image (epollcr show --json) with the kernel's own view.

usage: check_image.py PID IMAGE.json [--subset]

The kernel's view is /proc/PID/fdinfo of every epoll fd of PID, read here.
Every epoll fd of the process must be in the image with exactly the kernel's
watches (tfd, events, data); every open_fd the image names must hold a file
with the inode the kernel shows for that watch, and be of the kind the image
says.  --subset allows the process to have more epoll fds than the image
(used when the state changes between the dump and this check).
Exit 0 when they agree, 1 with one line per difference.
"""
import json
import os
import stat
import sys

KIND_BY_LINK = {
    "socket": "socket", "pipe": "pipe",
    "anon_inode:[eventfd]": "eventfd", "anon_inode:[timerfd]": "timerfd",
    "anon_inode:[signalfd]": "signalfd", "anon_inode:[eventpoll]": "epoll",
}


def link_kind(link, mode=0):
    """The image's kind name for a /proc/PID/fd link (and its stat mode:
    a named FIFO's link is its path)."""
    if stat.S_ISFIFO(mode):
        return "pipe"
    if link.startswith("socket:"):
        return "socket"
    if link.startswith("pipe:"):
        return "pipe"
    return KIND_BY_LINK.get(link, "other")


def kernel_view(pid):
    """{epfd: sorted [(tfd, events, data, ino)]} from /proc/PID/fdinfo."""
    view = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if link != "anon_inode:[eventpoll]":
            continue
        watches = []
        with open(f"/proc/{pid}/fdinfo/{name}") as f:
            for line in f:
                if not line.startswith("tfd:"):
                    continue
                parts = line.split()
                fields = {parts[i].rstrip(":"): parts[i + 1]
                          for i in range(0, 6, 2)}
                ino = [p for p in parts if p.startswith("ino:")][0][4:]
                watches.append((int(fields["tfd"]),
                                "0x%x" % int(fields["events"], 16),
                                "0x%x" % int(fields["data"], 16),
                                int(ino, 16)))
        view[int(name)] = sorted(watches)
    return view


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    pid = int(sys.argv[1])
    subset = "--subset" in sys.argv[3:]
    with open(sys.argv[2]) as f:
        image = json.load(f)
    kernel = kernel_view(pid)
    problems = []
    seen = set()
    for ep in image["epoll"]:
        fds = ep.get("fds") or ([ep["fd"]] if ep["fd"] is not None else [])
        watches = sorted((w["tfd"], w["events"], w["data"])
                         for w in ep["watches"])
        for fd in fds:
            seen.add(fd)
            if fd not in kernel:
                problems.append(f"epoll fd {fd}: in the image, not in the kernel")
                continue
            kw = [(t, e, d) for (t, e, d, _) in kernel[fd]]
            if kw != watches:
                problems.append(f"epoll fd {fd}: kernel {kw} != image {watches}")
            inos = {(t, e, d): ino for (t, e, d, ino) in kernel[fd]}
            for w in ep["watches"]:
                ofd = w.get("open_fd")
                if ofd is None:
                    continue
                try:
                    st = os.stat(f"/proc/{pid}/fd/{ofd}")
                    link = os.readlink(f"/proc/{pid}/fd/{ofd}")
                except OSError:
                    problems.append(f"epoll fd {fd} tfd {w['tfd']}: open_fd {ofd} is not open")
                    continue
                ino = inos.get((w["tfd"], w["events"], w["data"]))
                if ino is not None and st.st_ino != ino:
                    problems.append(f"epoll fd {fd} tfd {w['tfd']}: open_fd {ofd} has inode {st.st_ino}, the kernel watches inode {ino}")
                kind = w.get("target", {}).get("kind")
                if kind and kind != link_kind(link, st.st_mode):
                    problems.append(f"epoll fd {fd} tfd {w['tfd']}: image says {kind}, fd {ofd} is {link}")
    if not subset:
        for fd in kernel:
            if fd not in seen:
                problems.append(f"epoll fd {fd}: in the kernel, not in the image")
    for p in problems:
        print(p)
    nwatches = sum(len(v) for v in kernel.values())
    print(f"checked {len(seen)} epoll fds against /proc/{pid}/fdinfo "
          f"({nwatches} kernel watches): {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
