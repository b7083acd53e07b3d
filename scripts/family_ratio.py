#!/usr/bin/env python3
"""Time of each softmax-family member over softmax's, same impl, pass, dtype and shape.

    scripts/family_ratio.py results.csv [more.csv ...] [--impl tiled]

One line per non-softmax row (piecewise, hyperbolic, with their params) that has a softmax row of
the same impl, pass, dtype, B, H, Hkv, Tq, Tk, Dk, Dv and causal mask: both medians and the ratio
(member ms / softmax ms; the issue 5 target for the forward is <= 1.3). The last matching row wins
when a point was measured twice.
"""
import csv
import signal
import sys


def main(argv):
    impl = "tiled"
    if "--impl" in argv:
        i = argv.index("--impl")
        impl = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    rows = []
    for p in argv:
        with open(p, newline="") as f:
            rows += [r for r in csv.DictReader(f) if r["impl"] == impl and r["ms_median"]]
    shape = lambda r: (r["pass"], r["dtype"], r["B"], r["H"], r["Hkv"], r["Tq"], r["Tk"], r["Dk"], r["Dv"], r["causal"])
    base = {shape(r): float(r["ms_median"]) for r in rows if r["algo"] == "softmax"}
    members = {}
    for r in rows:
        if r["algo"] == "softmax" or shape(r) not in base:
            continue
        params = ";".join(x for x in r["params"].split(";") if not x.startswith("lse"))
        members[(r["algo"], params) + shape(r)] = float(r["ms_median"])
    print("| algo | params | pass | dtype | B | T | D | causal | ms | softmax ms | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    order = lambda k: (k[0], k[1], k[2], k[11], int(k[9]), int(k[7]))  # algo, params, pass, causal, D, T
    for k in sorted(members, key=order):
        algo, params, pas, dt, B, H, Hkv, Tq, Tk, Dk, Dv, causal = k
        ms, sm = members[k], base[k[2:]]
        T = Tq if Tq == Tk else f"{Tq}/{Tk}"
        print(f"| {algo} | {params} | {pas} | {dt} | {B} | {T} | {Dk} | {causal} | {ms:.4g} | {sm:.4g} | {ms / sm:.2f}x |")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
