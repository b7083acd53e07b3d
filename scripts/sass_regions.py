#!/usr/bin/env python3
"""Where a kernel's instructions go, from Nsight Compute's SASS source page (scripts/ncu-source.sh,
scripts/bidir-check.sh's ncu stage with BIDIR_CHECK_NCU_SRC).

Consecutive instructions with the same execution count form a region (a straight-line block run
the same number of times: per tile, per slab, once). Each region large enough is printed with its
share of the executed instructions, its stall samples and its commonest opcodes; the execution
count says how often it runs (e.g. 65536 = 8192 tiles x 8 warps). --dump A B prints instructions
A..B with their executions and samples.

  scripts/sass_regions.py ncu_x_sass.csv.gz KERNEL_SUBSTRING [--min 0.005] [--dump A B]
"""
import argparse
import collections
import csv
import gzip


def load(path, want):
    kern, hdr, ins = None, None, []
    for r in csv.reader(gzip.open(path, "rt")):
        if r and r[0] == "Kernel Name":
            kern, hdr = r[1], None
            if ins and want in (kern or ""):
                break  # the first matching kernel only (the page may list a kernel twice)
            continue
        if r and r[0] == "Address":
            hdr = r
            continue
        if hdr and kern and want in kern and len(r) == len(hdr):
            ins.append(dict(zip(hdr, r)))
    return ins


def opcode(src):
    words = src.split()
    if not words:
        return ""
    op = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
    return op.split(".")[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv_gz")
    ap.add_argument("kernel")
    ap.add_argument("--min", type=float, default=0.005, help="smallest share of executed instructions shown")
    ap.add_argument("--dump", nargs=2, type=int, metavar=("A", "B"))
    a = ap.parse_args()
    ins = load(a.csv_gz, a.kernel)
    if not ins:
        raise SystemExit(f"no kernel matching {a.kernel!r} in {a.csv_gz}")
    num = lambda d, k: int(d.get(k) or 0)
    if a.dump:
        for i in range(a.dump[0], min(a.dump[1], len(ins) - 1) + 1):
            d = ins[i]
            print(i, d["Instructions Executed"], d["Warp Stall Sampling (All Samples)"], d["Source"].strip())
        return
    runs, cur = [], None
    for i, d in enumerate(ins):
        e, s = num(d, "Instructions Executed"), num(d, "Warp Stall Sampling (All Samples)")
        op = opcode(d["Source"].strip())
        if cur and cur["e"] == e:
            cur["n"] += 1
            cur["s"] += s
            cur["ops"][op] += 1
            cur["end"] = i
        else:
            cur = {"start": i, "end": i, "e": e, "n": 1, "s": s, "ops": collections.Counter({op: 1})}
            runs.append(cur)
    tot = sum(r["e"] * r["n"] for r in runs)
    tot_s = sum(r["s"] for r in runs)
    print(f"{len(ins)} instructions, {tot} executed (warp level), {tot_s} stall samples")
    for r in runs:
        w = r["e"] * r["n"]
        if w >= a.min * tot or r["s"] >= 0.01 * tot_s:
            ops = " ".join(f"{k}:{v}" for k, v in r["ops"].most_common(9))
            print(f"{r['start']:5d}-{r['end']:5d} n={r['n']:4d} exec={r['e']:9d} {w / 1e6:6.2f}M ({100 * w / tot:4.1f}%) "
                  f"samples={r['s']:5d}  {ops}")


if __name__ == "__main__":
    main()
