#!/usr/bin/env python3
"""Prints an A/B CSV (bidir-check.sh's ab.csv: a `label` column added to the harness CSV) as one
markdown table: a row per label, a column per (feature map, T), cells ms_median / floor_ms.

    python3 scripts/ab_table.py OUT/ab.csv
"""
import csv
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    rows = [r for r in csv.DictReader(open(sys.argv[1])) if r.get("ms_median") and r.get("floor_ms")]
    if not rows:
        print(f"{sys.argv[1]}: no timed rows", file=sys.stderr)
        return 1
    labels = list(dict.fromkeys(r["label"] for r in rows))
    cols = list(dict.fromkeys((r["params"].replace("fmap=", ""), int(r["Tq"])) for r in rows))
    cell = {(r["label"], r["params"].replace("fmap=", ""), int(r["Tq"])): float(r["ms_median"]) / float(r["floor_ms"])
            for r in rows}
    print("| label | " + " | ".join(f"{m} {t}" for m, t in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for l in labels:
        print(f"| {l} | " + " | ".join(f"{cell[(l, m, t)]:.3f}" if (l, m, t) in cell else "-" for m, t in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
