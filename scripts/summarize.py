#!/usr/bin/env python3
"""Print a short markdown table of an attnbench results CSV (and peers' rows in it).

    scripts/summarize.py results.csv [more.csv ...]

One line per (algo/variant, impl, pass, dtype, shape): status, median ms, TFLOP/s or GB/s, the
floor ratio (ms / floor_ms) for memory-bound families, and for softmax-family rows the speed ratio
to each peer measured in the same files (sdpa_flash, sdpa_cudnn) at the same point.
"""
import csv
import signal
import sys
from collections import defaultdict


def fnum(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def main(paths):
    rows = []
    for p in paths:
        with open(p, newline="") as f:
            rows += list(csv.DictReader(f))
    if not rows:
        sys.exit("summarize.py: no rows")
    key = lambda r: (r["algo"], r["variant"], r["pass"], r["dtype"], r["B"], r["H"], r["Hkv"], r["Tq"], r["Tk"],
                     r["Dk"], r["Dv"], r["causal"], r["params"].split(";lse")[0])
    peers = defaultdict(dict)
    for r in rows:
        if r["impl"].startswith("sdpa_") and fnum(r["ms_median"]):
            peers[key(r)][r["impl"]] = fnum(r["ms_median"])
    peer_names = sorted({n for d in peers.values() for n in d})
    head = ["algo", "impl", "pass", "dtype", "B", "H", "T", "Dk/Dv", "causal", "status", "ms", "TFLOP/s", "GB/s", "x floor"]
    head += [f"vs {n}" for n in peer_names]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        if r["impl"].startswith("sdpa_"):
            continue
        ms = fnum(r["ms_median"])
        fl = fnum(r.get("floor_ms"))
        algo = r["algo"] + ("/" + r["variant"] if r["variant"] else "")
        t = r["Tq"] if r["Tq"] == r["Tk"] else f'{r["Tq"]}/{r["Tk"]}'
        status = r["status"] if len(r["status"]) < 40 else r["status"][:37] + "..."
        cells = [algo, r["impl"], r["pass"], r["dtype"], r["B"], r["H"], t, f'{r["Dk"]}/{r["Dv"]}', r["causal"], status,
                 f"{ms:.4g}" if ms else "", r.get("tflops", ""), r.get("gbps", ""),
                 f"{ms / fl:.2f}" if ms and fl else ""]
        for n in peer_names:
            pm = peers.get(key(r), {}).get(n)
            cells.append(f"{pm / ms:.2f}x" if pm and ms else "")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the output quietly
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
