#!/usr/bin/env python3
"""The TMA bidir forward's timeline (ATTNBENCH_BIDIR_DIAG=32: every CTA prints
`bidir-ts bh rank sm t0 t1 t2 t3 [t7 t8 t9]`, %globaltimer ns at its start, the end of phase 1, the end of the
state exchange and its end; then stamps inside the exchange) as a table per launch: each phase's duration over the CTAs (min /
median / max, us), the CTAs' start and end offsets from the launch's first start, and the span.

  scripts/bidir_timeline.py LOG [--last N]      (LOG: the harness run's output; '-' for stdin)
"""
import argparse
import statistics
import sys


def launches(rows, gap_ns=20_000):
    """Groups the rows by launch: a launch's CTAs all start within gap_ns of its first."""
    rows = sorted(rows, key=lambda r: r[3])
    out, cur = [], []
    for r in rows:
        if cur and r[3] - cur[0][3] > gap_ns:
            out.append(cur)
            cur = []
        cur.append(r)
    if cur:
        out.append(cur)
    return out


def stats(xs):
    xs = sorted(xs)
    return f"{xs[0] / 1e3:7.2f} {statistics.median(xs) / 1e3:7.2f} {xs[-1] / 1e3:7.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log")
    ap.add_argument("--last", type=int, default=3, help="launches to print (the last N; default 3)")
    a = ap.parse_args()
    f = sys.stdin if a.log == "-" else open(a.log, errors="replace")
    rows = []
    for line in f:
        w = line.split()
        if len(w) in (8, 11) and w[0] == "bidir-ts":
            try:
                rows.append(tuple(int(x) for x in w[1:]))
            except ValueError:  # a line cut by other output
                pass
    if not rows:
        sys.exit("bidir_timeline: no 'bidir-ts' lines (run with ATTNBENCH_BIDIR_DIAG=32 on the TMA forward)")
    ls = launches(rows)
    print(f"{len(rows)} CTA lines, {len(ls)} launches; the last {min(a.last, len(ls))} (us: min median max over the CTAs)")
    print("| launch | CTAs | span | start | phase 1 | exchange | phase 2 | end |")
    print("|---|---|---|---|---|---|---|---|")
    for i, L in enumerate(ls[-a.last:]):
        t0 = min(r[3] for r in L)
        span = max(r[6] for r in L) - t0
        cols = [
            [r[3] - t0 for r in L],
            [r[4] - r[3] for r in L],
            [r[5] - r[4] for r in L],
            [r[6] - r[5] for r in L],
            [r[6] - t0 for r in L],
        ]
        print(f"| {len(ls) - min(a.last, len(ls)) + i} | {len(L)} | {span / 1e3:.2f} | " + " | ".join(stats(c) for c in cols) + " |")
    # Inside the exchange (10-field lines): every warp's partial stored (t7), after the cluster
    # barrier (t8), after the owned rows' writes (t9), then the final barrier (t2). With the push
    # exchange (ATTNBENCH_BIDIR_KVT=push): the partial sent (t7), the partner's received (t8), the
    # KVr^T chunks sent (t9); no final barrier (its wait for the chunks is in phase 2).
    L = ls[-1]
    if all(len(r) == 10 and r[7] and r[8] and r[9] for r in L):  # (0: not stamped by this kernel)
        parts = [("from phase 1's end to all partials stored", 4, 7), ("cluster barrier / partner's partial", 7, 8), ("owned rows", 8, 9),
                 ("final barrier", 9, 5)]
        print("last launch, the exchange in parts (us, min median max): " +
              "; ".join(f"{n} {stats([r[b] - r[a] for r in L])}" for n, a, b in parts))
    # A head split over a cluster of CTAs: how far apart its CTAs end phase 1 (the exchange waits for
    # the last), and the SMs of the earliest and latest CTA ends (a property of the SM: session 12).
    heads = {}
    for r in L:
        heads.setdefault(r[0], []).append(r)
    if max(len(h) for h in heads.values()) > 1:
        skew = [max(r[4] for r in h) - min(r[4] for r in h) for h in heads.values() if len(h) > 1]
        print(f"last launch: phase-1 end skew within a head's CTAs (us, min median max over {len(skew)} heads): {stats(skew)}")
    t0 = min(r[3] for r in L)
    by_end = sorted(L, key=lambda r: r[6])
    fmt = lambda rs: " ".join(f"{r[2]}:{(r[6] - t0) / 1e3:.1f}" for r in rs)
    print(f"last launch: first 8 CTA ends (sm:us) {fmt(by_end[:8])}; last 8 {fmt(by_end[-8:])}")


if __name__ == "__main__":
    main()
