#!/usr/bin/env python3
"""Checks of images of real programs against the kernel's own view.

usage:
  real_check.py stable PID IMAGE.json [--allow CODE]...
      An image taken under load (IMAGE.json may hold the array that
      `show --json DIR` prints: the image of PID is taken).  Connections come and go between the dump
      and this check, so only the stable watches are compared: those on
      listening TCP sockets, unix sockets, pipes, eventfds, timerfds,
      signalfds and epoll sets.  Every stable watch the kernel shows now
      (/proc/PID/fdinfo, read here) must be in the image with the same tfd,
      events and data, every stable watch of the image must be in the
      kernel, the open_fd the image names for it must hold the file the
      kernel watches, and the image must name every epoll fd the process
      has.  Also runs the `image` checks below.  The last line printed ends
      with "image has N connection watches (M EPOLLET): P problems".
  real_check.py image IMAGE.json [--allow CODE]...
      The image is complete, has the kernel's and the shim's view, and has
      no diagnostic of the codes that mean the shim and the kernel disagree
      (phantom-watch, unseen-watch, mismatch, no-proc, incomplete) unless
      allowed with --allow.
  real_check.py conns PID
      Print how many watches of PID's epoll sets are on TCP connections
      (not listening), from the kernel's view.
  real_check.py noconn IMAGE.json
      Fail when the image watches a TCP connection (a quiet image must
      not; unix sockets are left to the restore, which must bring back
      those whose peer is in the image).
  real_check.py skipped IMAGE.json OUT.json
      Write to OUT.json the image without the watches that
      `epollcr restore --missing=skip` leaves out (connected sockets whose
      peer is not in the image, but connected UDP; connections that
      ended; named FIFOs) and print one line "epfd E tfd T" per
      watch left out.
Exit status 0 when the check holds, 1 with one line per problem.
"""
import json
import os
import re
import sys

BAD_CODES = ("phantom-watch", "unseen-watch", "mismatch", "no-proc",
             "incomplete")


def epoll_fds(pid):
    """{epfd: [(tfd, events, data, ino)]} from /proc/PID/fdinfo."""
    view = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{name}")
            if link != "anon_inode:[eventpoll]":
                continue
            with open(f"/proc/{pid}/fdinfo/{name}") as f:
                lines = f.readlines()
        except OSError:
            continue  # closed meanwhile
        watches = []
        for line in lines:
            if not line.startswith("tfd:"):
                continue
            fields = dict(re.findall(r"(\w+):\s*([0-9a-fA-F]+)", line))
            watches.append((int(fields["tfd"]),
                            "0x%x" % int(fields["events"], 16),
                            "0x%x" % int(fields["data"], 16),
                            int(fields["ino"], 16)))
        view[int(name)] = watches
    return view


def fd_links(pid):
    """{ino: link} of every fd of PID."""
    links = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{name}")
            ino = os.stat(f"/proc/{pid}/fd/{name}").st_ino
        except OSError:
            continue
        links[ino] = link
    return links


def tcp_states(pid):
    """{ino: state} of the TCP sockets of PID's network namespace."""
    states = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 9 and parts[9] != "0":
                        states[int(parts[9])] = parts[3]
        except OSError:
            pass
    return states


def unix_inodes(pid):
    inodes = set()
    try:
        with open(f"/proc/{pid}/net/unix") as f:
            next(f)
            for line in f:
                parts = line.split()
                if len(parts) > 6:
                    inodes.add(int(parts[6]))
    except OSError:
        pass
    return inodes


def classify(ino, links, tcp, unix):
    """'stable', 'conn' or 'unknown' for a watched inode."""
    if ino in tcp:
        return "stable" if tcp[ino] == "0A" else "conn"
    if ino in unix:
        return "stable"
    link = links.get(ino)
    if link is None:
        return "unknown"
    if link.startswith("pipe:") or link.startswith("anon_inode:"):
        return "stable"
    return "unknown"


def image_stable(w):
    t = w.get("target") or {}
    kind = t.get("kind")
    if kind == "socket":
        return bool(t.get("listening")) or t.get("domain") == "AF_UNIX"
    return kind in ("pipe", "eventfd", "timerfd", "signalfd", "epoll")


def image_conn(w):
    t = w.get("target") or {}
    return t.get("kind") == "socket" and not t.get("listening") and \
        t.get("domain") in ("AF_INET", "AF_INET6")


def check_image(image, allowed, problems):
    if not image.get("complete"):
        problems.append("the image is not complete")
    if not image.get("kernel_view") or not image.get("shadow_view"):
        problems.append("the image lacks the kernel's or the shim's view")
    for d in image["diagnostics"]:
        if d.get("code") in BAD_CODES and d.get("code") not in allowed:
            problems.append(f"diagnostic {d.get('code')}: epfd {d.get('epfd')} tfd {d.get('tfd')}: {d.get('message')}")


def cmd_image(args, allowed):
    with open(args[0]) as f:
        image = json.load(f)
    problems = []
    check_image(image, allowed, problems)
    nw = sum(len(e["watches"]) for e in image["epoll"])
    nconn = sum(1 for e in image["epoll"] for w in e["watches"]
                if image_conn(w))
    for p in problems:
        print(p)
    print(f"image: {len(image['epoll'])} sets, {nw} watches ({nconn} on TCP connections), {len(image['diagnostics'])} diagnostics: {len(problems)} problems")
    return 1 if problems else 0


def load_image(path, pid):
    """The image of PID in the output of `show --json` (an object, or an
    array for a directory)."""
    with open(path) as f:
        j = json.load(f)
    if isinstance(j, dict):
        return j
    for image in j:
        if image["pid"] == pid:
            return image
    raise SystemExit(f"no image of pid {pid} in {path}")


def cmd_stable(args, allowed):
    pid = int(args[0])
    image = load_image(args[1], pid)
    # The kernel first (closest to the dump), then what names its inodes.
    kernel = epoll_fds(pid)
    links = fd_links(pid)
    tcp = tcp_states(pid)
    unix = unix_inodes(pid)
    problems = []
    check_image(image, allowed, problems)

    img_sets = {}
    for ep in image["epoll"]:
        for fd in ep.get("fds") or []:
            img_sets[fd] = ep["watches"]
    for fd in kernel:
        if fd not in img_sets:
            problems.append(f"epoll fd {fd}: in the kernel, not in the image")
    for fd in img_sets:
        if fd not in kernel:
            problems.append(f"epoll fd {fd}: in the image, not in the kernel")

    compared = conns = unknown = img_conns = img_et = 0
    for fd in sorted(set(kernel) & set(img_sets)):
        iw = {(w["tfd"], w["events"], w["data"]): w for w in img_sets[fd]}
        kw = {(t, e, d): ino for (t, e, d, ino) in kernel[fd]}
        for key, ino in sorted(kw.items()):
            c = classify(ino, links, tcp, unix)
            if c == "conn":
                conns += 1
                continue
            if c == "unknown":
                unknown += 1
                continue
            compared += 1
            w = iw.get(key)
            if w is None:
                problems.append(f"epoll fd {fd}: stable kernel watch tfd {key[0]} events {key[1]} data {key[2]} (inode {ino}, {links.get(ino, '?')}) is not in the image")
                continue
            ofd = w.get("open_fd")
            if ofd is None:
                problems.append(f"epoll fd {fd} tfd {key[0]}: the image names no fd holding the watched file")
                continue
            try:
                st = os.stat(f"/proc/{pid}/fd/{ofd}")
            except OSError:
                problems.append(f"epoll fd {fd} tfd {key[0]}: open_fd {ofd} is not open")
                continue
            if st.st_ino != ino:
                problems.append(f"epoll fd {fd} tfd {key[0]}: open_fd {ofd} has inode {st.st_ino}, the kernel watches inode {ino}")
            if not image_stable(w):
                problems.append(f"epoll fd {fd} tfd {key[0]}: the kernel watches a stable file ({links.get(ino, '?')}), the image describes {w.get('target')}")
        for key, w in sorted(iw.items()):
            if image_conn(w):
                img_conns += 1
                img_et += bool(int(w["events"], 16) & 0x80000000)
                continue
            if key not in kw:
                problems.append(f"epoll fd {fd}: image watch tfd {key[0]} events {key[1]} data {key[2]} ({(w.get('target') or {}).get('kind')}) is not in the kernel")
    for p in problems:
        print(p)
    print(f"stable: {len(kernel)} epoll fds, {compared} stable watches compared with /proc/{pid}/fdinfo; skipped {conns} kernel watches on TCP connections, {unknown} unclassified; image has {img_conns} connection watches ({img_et} EPOLLET): {len(problems)} problems")
    return 1 if problems else 0


def cmd_conns(args):
    pid = int(args[0])
    kernel = epoll_fds(pid)
    tcp = tcp_states(pid)
    n = sum(1 for ws in kernel.values() for (_, _, _, ino) in ws
            if ino in tcp and tcp[ino] != "0A")
    print(n)
    return 0


def cmd_noconn(args):
    with open(args[0]) as f:
        image = json.load(f)
    bad = [(e["fd"], w["tfd"]) for e in image["epoll"] for w in e["watches"]
           if image_conn(w) and w["target"].get("connected")]
    for fd, tfd in bad:
        print(f"epoll fd {fd} tfd {tfd}: TCP connection in a quiet image")
    return 1 if bad else 0


def reconnectable(t):
    """A connected inet datagram socket: connect() brings it back."""
    return t.get("domain") in ("AF_INET", "AF_INET6") and \
        t.get("type") == "SOCK_DGRAM" and t.get("peer") is not None


def cmd_skipped(args):
    with open(args[0]) as f:
        image = json.load(f)
    for e in image["epoll"]:
        kept = []
        for w in e["watches"]:
            t = w.get("target") or {}
            if t.get("kind") == "pipe" and (t.get("path") or "").startswith("/"):
                print(f"epfd {e['fd']} tfd {w['tfd']}")  # a named FIFO
            elif t.get("kind") == "socket" and (t.get("ended") or (
                    t.get("connected") and not t.get("socketpair") and
                    not reconnectable(t))):
                print(f"epfd {e['fd']} tfd {w['tfd']}")
            else:
                kept.append(w)
        e["watches"] = kept
    with open(args[1], "w") as f:
        json.dump(image, f)
    return 0


def main():
    argv = sys.argv[1:]
    allowed = set()
    rest = []
    i = 0
    while i < len(argv):
        if argv[i] == "--allow" and i + 1 < len(argv):
            allowed.add(argv[i + 1])
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    if not rest:
        print(__doc__)
        return 2
    cmd, args = rest[0], rest[1:]
    if cmd == "stable" and len(args) == 2:
        return cmd_stable(args, allowed)
    if cmd == "image" and len(args) == 1:
        return cmd_image(args, allowed)
    if cmd == "conns" and len(args) == 1:
        return cmd_conns(args)
    if cmd == "noconn" and len(args) == 1:
        return cmd_noconn(args)
    if cmd == "skipped" and len(args) == 2:
        return cmd_skipped(args)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
