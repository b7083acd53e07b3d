#!/usr/bin/env python3
"""Plot a suite's results beside its published numbers, in the style of the seeds' figures.

    scripts/plot_suite.py SUITE results.csv [--out DIR]

SUITE is a suite name (suites/<name>.suite) or a path to a .suite file; results.csv is what
`attnbench suite SUITE` wrote (peers' rows from scripts/peers.py included). For a suite with a
published file it writes, per algorithm (and variant):

  <suite>_<algo>[-<variant>].png   one panel per (Dk/Dv, causal, pass) of the published table:
                                   TFLOP/s or ms (the published metric) vs sequence length, one
                                   solid line per implementation measured here, one dashed line
                                   per published provider; `fwd+bwd` panels add our fwd and bwd
                                   medians. Points measured as skipped or failed are listed in the
                                   panel, never drawn as zero.

For a suite without a published file it draws what scripts/plot.py draws (speed and error per
algorithm and dtype) under <suite>_... names. Default DIR: <csv folder>/plots. Needs matplotlib.
"""
import argparse
import csv
import math
import os
import sys
import textwrap
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import plot as plot_csv  # noqa: E402  (scripts/plot.py: the per-CSV figures)

RESULT_COLUMNS = {"algo", "variant", "impl", "pass", "dtype", "B", "H", "Hkv", "Tq", "Tk", "Dk", "Dv", "causal",
                  "status", "ms_median", "tflops"}
PUBLISHED_COLUMNS = {"source", "hardware", "algo", "variant", "provider", "pass", "dtype", "B", "H", "T", "Dk", "Dv",
                     "causal", "metric", "value"}


def fail(msg):
    sys.exit(f"plot_suite.py: {msg}")


def source_dir():
    return os.environ.get("ATTNBENCH_SOURCE_DIR") or os.path.dirname(HERE)


def load_suite(name_or_path):
    """The suite's name, published path and provider map (the format of suites/README.md)."""
    path = name_or_path
    if "/" not in name_or_path and not name_or_path.endswith(".suite"):
        path = os.path.join(source_dir(), "suites", name_or_path + ".suite")
    if not os.path.isfile(path):
        fail(f"suite: cannot read '{path}'")
    suite = {"name": os.path.splitext(os.path.basename(path))[0], "published": "", "providers": {}}
    with open(path) as f:
        for line in f:
            text = line.split("#", 1)[0].strip()
            if not text or ":" not in text:
                continue
            key, value = (s.strip() for s in text.split(":", 1))
            if key == "published":
                suite["published"] = value if os.path.isabs(value) else os.path.join(source_dir(), value)
            elif key == "provider" and "=" in value:
                prov, impls = value.rsplit("=", 1)
                impls = impls.strip()
                suite["providers"][prov.strip()] = [] if impls == "-" else [i.strip() for i in impls.split(",")]
    return suite


def read_csv(path, need, what):
    if not os.path.isfile(path):
        fail(f"{what}: cannot read '{path}'")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = need - set(reader.fieldnames or [])
        if missing:
            fail(f"{what}: {path}: missing columns: {', '.join(sorted(missing))}")
        return list(reader)


def fnum(s):
    try:
        v = float(s)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return None


def measured_index(rows):
    """(algo, variant, impl, pass, dtype, B, H, T, Dk, Dv, causal) -> row; MHA, Tq == Tk; later rows win."""
    idx = {}
    for r in rows:
        if r["Tq"] != r["Tk"] or (r["Hkv"] and r["Hkv"] != r["H"]):
            continue
        idx[(r["algo"], r["variant"], r["impl"], r["pass"], r["dtype"], r["B"], r["H"], r["Tq"], r["Dk"], r["Dv"],
             r["causal"])] = r
    return idx


def measure(idx, p, impl, metric):
    """Our value at published point p, or (None, status) when there is no timing."""
    for dtype in p["dtype"].split("/"):
        def one(pas):
            return idx.get((p["algo"], p["variant"], impl, pas, dtype, p["B"], p["H"], p["T"], p["Dk"], p["Dv"],
                            p["causal"]))
        rows = [one("fwd"), one("bwd")] if p["pass"] == "fwd+bwd" else [one(p["pass"])]
        if all(r is None for r in rows):
            continue
        if any(r is None for r in rows):
            return None, "partial"
        for r in rows:
            if r["status"] not in ("pass", "unchecked") or fnum(r["ms_median"]) is None:
                return None, r["status"]
        ms = sum(fnum(r["ms_median"]) for r in rows)
        if metric == "tflops":
            flops = sum((fnum(r["tflops"]) or 0) * fnum(r["ms_median"]) for r in rows)
            return (flops / ms if flops > 0 else None), "pass"
        return ms, "pass"
    return None, None


def draw_published(suite, pub, rows, out):
    idx = measured_index(rows)
    impls_here = sorted({r["impl"] for r in rows})
    figures = defaultdict(list)
    for p in pub:
        figures[p["algo"] + (f'-{p["variant"]}' if p["variant"] else "")].append(p)
    written = []
    for name, prows in sorted(figures.items()):
        panels = defaultdict(list)
        for p in prows:
            panels[(int(p["Dk"]), int(p["Dv"]), p["causal"], p["pass"], p["metric"])].append(p)
        keys = sorted(panels, key=lambda k: (k[0], k[1], k[2], {"fwd": 0, "bwd": 1}.get(k[3], 2)))
        ncols = min(len(keys), 4)
        nrows = (len(keys) + ncols - 1) // ncols
        fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.8 * ncols, 7.0), 3.8 * nrows + 0.4), squeeze=False)
        for ax, key in zip(axes.flat, keys):
            dk, dv, causal, pas, metric = key
            ms_metric = metric != "tflops"
            published = defaultdict(list)
            ours = defaultdict(list)
            not_timed = defaultdict(set)
            for p in panels[key]:
                t = int(p["T"])
                published[p["provider"]].append((t, float(p["value"])))
                for impl in impls_here:
                    v, status = measure(idx, p, impl, "ms" if ms_metric else "tflops")
                    if v is not None:
                        ours[impl].append((t, v))
                    elif status is not None:
                        not_timed[impl].add(status)
            for prov, pts in sorted(published.items()):
                pts = sorted(set(pts))
                ax.plot([a for a, _ in pts], [b for _, b in pts], ls="--", marker="x", ms=4,
                        label=f"{prov} (published)")
            for impl, pts in sorted(ours.items()):
                pts = sorted(set(pts))
                ax.plot([a for a, _ in pts], [b for _, b in pts], ls="-", marker="o", ms=3, lw=1.8, label=f"{impl} (here)")
            notes = [textwrap.shorten(f"{impl}: {'; '.join(sorted(s))}", 70) for impl, s in sorted(not_timed.items())
                     if impl not in ours]
            if notes:  # skipped or failed here: said in words, never drawn as zero
                ax.text(0.98, 0.02, "\n".join(["not timed here:"] + [textwrap.fill(n, 38) for n in notes]),
                        transform=ax.transAxes, fontsize=6, va="bottom", ha="right", color="dimgray")
            ax.set_xscale("log", base=2)
            if ms_metric:
                ax.set_yscale("log")
            ax.set_xlabel("sequence length T")
            ax.set_ylabel("ms" if ms_metric else "TFLOP/s")
            ax.set_title(f"D={dk}" + (f"/{dv}" if dv != dk else "") + f" causal={causal} {pas}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=6, loc="upper left")
        for ax in list(axes.flat)[len(keys):]:
            ax.set_visible(False)
        hw = sorted({p["hardware"] for p in prows})
        gpus = sorted({r["gpu"] for r in rows if r.get("gpu") and r["status"] in ("pass", "unchecked")})
        fig.suptitle(f"{suite['name']}: {name}\npublished on {', '.join(hw)}; measured here on "
                     f"{', '.join(gpus) or 'nothing (no timed rows)'}", fontsize=9)
        fig.tight_layout()
        path = os.path.join(out, f"{suite['name']}_{name}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suite", help="suite name or path to a .suite file")
    ap.add_argument("csv", help="results CSV written by attnbench suite")
    ap.add_argument("--out", help="output folder (default: <csv folder>/plots)")
    args = ap.parse_args(argv)
    suite = load_suite(args.suite)
    rows = read_csv(args.csv, RESULT_COLUMNS, "csv")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.csv)), "plots")
    os.makedirs(out, exist_ok=True)
    if suite["published"]:
        pub = read_csv(suite["published"], PUBLISHED_COLUMNS, "published")
        written = draw_published(suite, pub, rows, out)
    else:
        figures = defaultdict(list)
        for r in rows:
            figures[(r["algo"] + (f'-{r["variant"]}' if r["variant"] else ""), r["dtype"])].append(r)
        written = []
        for (name, dtype), frows in sorted(figures.items()):
            for kind in ("speed", "error"):
                path = os.path.join(out, f"{suite['name']}_{name}_{dtype}_{kind}.png")
                if plot_csv.draw(frows, f"{suite['name']}: {name} {dtype} ({kind})", path, kind):
                    written.append(path)
    if not written:
        fail(f"{args.csv}: nothing to plot")
    for p in written:
        print(p)


if __name__ == "__main__":
    main()
