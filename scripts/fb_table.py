#!/usr/bin/env python3
"""Forward, backward and forward+backward against the memory floor, from attnbench CSVs holding
rows of --pass fwd and --pass bwd at the same points (one CSV per label: A/B of one process each).

    python3 scripts/fb_table.py LABEL=results.csv [LABEL=more.csv ...]

One line per (label, algo/variant, dtype, B, H, T, Dk, Dv): fwd ms (x floor), bwd ms (x floor), and
fwd+bwd = (fwd ms + bwd ms) / (fwd floor_ms + bwd floor_ms), issue 6's forward+backward measure.
"""
import csv
import sys


def main(argv):
    if not argv or any("=" not in a for a in argv):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    cells = {}
    order = []
    for arg in argv:
        label, path = arg.split("=", 1)
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                if not r.get("ms_median") or not r.get("floor_ms") or r["pass"] not in ("fwd", "bwd"):
                    continue
                key = (label, f"{r['algo']}/{r['variant']}", r["dtype"], r["B"], r["H"], int(r["Tq"]), r["Dk"], r["Dv"])
                if key not in cells:
                    cells[key] = {}
                    order.append(key)
                cells[key][r["pass"]] = (float(r["ms_median"]), float(r["floor_ms"]))
    if not order:
        print("fb_table.py: no timed fwd/bwd rows", file=sys.stderr)
        return 1
    print("| label | algo | dtype | B | H | T | Dk | Dv | fwd ms (x floor) | bwd ms (x floor) | fwd+bwd x floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for key in order:
        c = cells[key]
        f, b = c.get("fwd"), c.get("bwd")
        fs = f"{f[0]:.4f} ({f[0] / f[1]:.2f})" if f else "-"
        bs = f"{b[0]:.4f} ({b[0] / b[1]:.2f})" if b else "-"
        fb = f"{(f[0] + b[0]) / (f[1] + b[1]):.2f}" if f and b else "-"
        print("| " + " | ".join(str(x) for x in key) + f" | {fs} | {bs} | {fb} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
