#!/usr/bin/env python3
"""Check the images test_stress.sh takes, as they come.

usage: real_stress_check.py LO HI < PATHS
Reads the paths of `epollcr show --json` outputs, one a line, until end of
input; checks each and removes it when it is fine (the first 5 bad ones are
kept).  An image is fine when it is complete, has the kernel's and the
shim's view, and carries no diagnostic above the info level (info: stale
tfd, unrestorable connected socket), with one exception: unseen-watch for
a watch under a number in LO..HI whose data is a child's mark
(CHILD_MARK | tfd, or that + 1 after its MOD).  Those numbers are where
stress's forked and exec'd children add files of their own to the sets
they share with the parent: calls the parent's shim cannot see.  Any other
watch under LO..HI is itself an inconsistency (the parent never uses those
numbers).
Prints the counts of every diagnostic code over all images, the number of
children's watches seen, up to 20 disagreements, and a last line
"checked N images: B inconsistent".
Exit status 0 when N > 0 and B = 0.
"""
import collections
import json
import os
import sys

CHILD_MARK = 0xc0de000000000000  # stress.c child_ops(): data of its watch
MAX_EXAMPLES = 20
MAX_KEPT = 5


def child_watch(w):
    """True when w is a watch a stress child made under its own number."""
    data = int(w["data"], 16)
    return data in (CHILD_MARK | w["tfd"], (CHILD_MARK | w["tfd"]) + 1)


def problems_of(image, lo, hi):
    out = []
    if not image.get("complete"):
        out.append("the image is not complete")
    if not image.get("kernel_view") or not image.get("shadow_view"):
        out.append("the image lacks the kernel's or the shim's view")
    watches = collections.defaultdict(list)
    for e in image["epoll"]:
        for w in e["watches"]:
            watches[(e["fd"], w["tfd"])].append(w)
            if lo <= w["tfd"] <= hi and not child_watch(w):
                out.append(f"watch under a child's number: epfd {e['fd']} tfd {w['tfd']} data {w['data']}")
    for d in image["diagnostics"]:
        if d.get("severity") == "info":
            continue
        code, epfd, tfd = d.get("code"), d.get("epfd"), d.get("tfd")
        if (code == "unseen-watch" and tfd is not None and lo <= tfd <= hi
                and watches.get((epfd, tfd))
                and all(child_watch(w) for w in watches[(epfd, tfd)])):
            continue
        out.append(f"{code}: epfd {epfd} tfd {tfd}: {d.get('message')}")
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    lo, hi = int(sys.argv[1]), int(sys.argv[2])
    codes = collections.Counter()
    bad_codes = collections.Counter()
    checked = bad = kept = watches = child_watches = 0
    examples = []
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        checked += 1
        try:
            with open(path) as f:
                image = json.load(f)
            probs = problems_of(image, lo, hi)
        except (OSError, ValueError, KeyError, TypeError) as e:
            probs = [f"cannot read {path}: {e}"]
            image = {"diagnostics": [], "epoll": []}
        for d in image["diagnostics"]:
            codes[d.get("code")] += 1
        for e in image["epoll"]:
            watches += len(e["watches"])
            child_watches += sum(1 for w in e["watches"]
                                 if lo <= w["tfd"] <= hi)
        if probs:
            bad += 1
            for p in probs:
                kind = p.split(":")[0]
                if " epfd None " in p:
                    kind += " (fd kind, no watch)"
                elif " epfd " in p:
                    kind += " (watch)"
                bad_codes[kind] += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append(f"{os.path.basename(path)}: {p}")
            if kept < MAX_KEPT:
                kept += 1
                continue
        try:
            os.unlink(path)
        except OSError:
            pass
    print("diagnostics over all images: " +
          (", ".join(f"{c} {n}" for c, n in sorted(codes.items())) or "none"))
    print(f"watches over all images: {watches}")
    print(f"children's watches seen: {child_watches} (under {lo}..{hi})")
    if bad:
        print("disagreements by code: " +
              ", ".join(f"{c} {n}" for c, n in sorted(bad_codes.items())))
    for e in examples:
        print("  " + e)
    print(f"checked {checked} images: {bad} inconsistent")
    return 0 if checked > 0 and bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
