#!/usr/bin/env python3
"""Plot an attnbench results CSV.

    scripts/plot.py results.csv [--out DIR]

Writes, per (algo/variant, dtype):
  <algo>[-<variant>]_<dtype>_speed.png   TFLOP/s (softmax family) or ms with the memory floor
                                         (linear families) vs sequence length, one line per impl,
                                         one panel per (Dk/Dv, causal, pass)
  <algo>[-<variant>]_<dtype>_error.png   max error vs sequence length, one line per impl, with the
                                         base error (dashed) and the floor (dotted), same panels
Only rows that passed their check (or were not asked to be checked) are drawn on speed plots; a
failed row never yields a speed point. Default DIR: <csv folder>/plots. Needs matplotlib only.
"""
import argparse
import csv
import math
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SOFTMAX_FAMILY = {"softmax", "piecewise", "hyperbolic"}


def fnum(s):
    try:
        v = float(s)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return None


def read_rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"algo", "variant", "impl", "pass", "dtype", "Tk", "Dk", "Dv", "causal", "status", "ms_median"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            sys.exit(f"plot.py: {path}: not an attnbench CSV (missing columns: {', '.join(sorted(missing))})")
        return list(reader)


def line_key(row, panel_rows):
    """The impl, plus B/H when this panel holds several (B, H) at one sequence length, plus the
    params (feature map, gate constants, ...) when the panel holds several."""
    per_t = defaultdict(set)
    for r in panel_rows:
        per_t[r["Tk"]].add((r["B"], r["H"], r.get("Hkv", r["H"])))
    key = row["impl"]
    if any(len(v) > 1 for v in per_t.values()):
        key += f' B={row["B"]} H={row["H"]}'
    if len({r.get("params", "") for r in panel_rows}) > 1:
        key += f' {row.get("params", "")}'
    return key


def panel_grid(n):
    cols = min(n, 4)
    return (n + cols - 1) // cols, cols


def draw(figure_rows, title, path, kind):
    panels = defaultdict(list)
    for r in figure_rows:
        panels[(int(r["Dk"]), int(r["Dv"]), r["causal"], r["pass"])].append(r)
    keys = sorted(panels, key=lambda k: (k[0], k[1], k[2], {"fwd": 0, "bwd": 1}.get(k[3], 2), k[3]))
    nrows, ncols = panel_grid(len(keys))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False)
    drawn = 0
    for ax, key in zip(axes.flat, keys):
        dk, dv, causal, pas = key
        rows = panels[key]
        memory_bound = rows[0]["algo"] not in SOFTMAX_FAMILY
        lines = defaultdict(list)
        floors = defaultdict(list)
        bases = defaultdict(list)
        for r in rows:
            t = int(r["Tk"])
            if kind == "speed":
                if r["status"] not in ("pass", "unchecked"):
                    continue
                ms = fnum(r["ms_median"])
                if ms is None:
                    continue
                tf = fnum(r.get("tflops"))
                y = ms if memory_bound or tf is None else tf
                lines[line_key(r, rows)].append((t, y))
                fl = fnum(r.get("floor_ms"))
                if memory_bound and fl is not None:
                    floors[r.get("gpu", "")].append((t, fl))
            else:
                err = fnum(r.get("err"))
                if err is None:
                    continue
                lines[line_key(r, rows)].append((t, max(err, 1e-12)))
                eb, fl = fnum(r.get("err_base")), fnum(r.get("floor"))
                if eb is not None and fl is not None:
                    bases[line_key(r, rows)].append((t, max(float(r.get("k") or 2) * eb + fl, 1e-12)))
        colors = {}
        for label, pts in sorted(lines.items()):
            pts.sort()
            (ln,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=label)
            colors[label] = ln.get_color()
            drawn += 1
        for label, pts in sorted(bases.items()):  # the rule's bound, same colour, dashed
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], ls="--", lw=0.8, color=colors.get(label, "gray"))
        for gpu, pts in floors.items():
            pts = sorted(set(pts))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], ls=":", color="black", label="memory floor")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length (Tk)")
        if kind == "speed":
            ax.set_ylabel("ms (median)" if memory_bound else "TFLOP/s")
            if memory_bound:
                ax.set_yscale("log")
        else:
            ax.set_ylabel("max |X - ref|  (dashed: k*err_base+floor)")
            ax.set_yscale("log")
        ax.set_title(f"Dk={dk} Dv={dv} causal={causal} {pas}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        if lines:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", help="results CSV written by attnbench run")
    ap.add_argument("--out", help="output folder (default: <csv folder>/plots)")
    args = ap.parse_args(argv)
    if not os.path.isfile(args.csv):
        sys.exit(f"plot.py: csv: cannot read '{args.csv}'")
    rows = read_rows(args.csv)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.csv)), "plots")
    os.makedirs(out, exist_ok=True)
    figures = defaultdict(list)
    for r in rows:
        name = r["algo"] + (f'-{r["variant"]}' if r["variant"] else "")
        figures[(name, r["dtype"])].append(r)
    written = []
    for (name, dtype), frows in sorted(figures.items()):
        for kind in ("speed", "error"):
            path = os.path.join(out, f"{name}_{dtype}_{kind}.png")
            if draw(frows, f"{name} {dtype} ({kind})", path, kind):
                written.append(path)
    if not written:
        sys.exit(f"plot.py: {args.csv}: no plottable rows (no timed passing rows and no errors)")
    for p in written:
        print(p)


if __name__ == "__main__":
    main()
