#!/usr/bin/env bash
# A/B of the fused forward of linear (normalize off) and the scalar gates on a GPU machine: the
# wgmma kernel (fused_wg_fwd, the default on sm_90 for widths in (64, 128]) against the mma.sync
# kernel (fused_fwd, ATTNBENCH_LIN_FUSED=mma). Builds attnbench and kernels_tests, runs the tiled
# linear/gated GPU tests (default kernels, then the scalar-gate and linear cases under the knob),
# times bf16 B=8 H=32 D=128 T=1024,4096,16384 fwd for linear and gated/retention with each kernel
# (one process per kernel, both in this call), then extras while time is left (bwd at T=4096,
# lightning and scalar fwd at T=4096, a checked T=1024 point), merges everything into ONE CSV
# with a leading column fwd_kernel, and prints the table (T, variant, kernel, ms, x floor) last.
#   scripts/lin-fwd-ab.sh [OUT_DIR]     (default: $OUT on the device tool, else results/lin-fwd-ab)
# Environment: LIN_AB_BUDGET_S (whole script, default 380), ATTNBENCH_CUDA_ARCH (default 90a).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-lib.sh  # ab_start(), ab_build(), gtest(), sweep()
ab_start lin-fwd-ab "${1:-${OUT:-results/lin-fwd-ab}}" "${LIN_AB_BUDGET_S:-380}"
bdir=build/gpu-ab
ab_build "$bdir"
D="--impl tiled --B 8 --H 32 --D 128"
gtest wg "" '*linear_tiled*:*gated_*_tiled*' "$(cap 35 130)"
sweep main-wg "$out/wg.csv" "$(cap 30 75)" --no-check --algo linear,gated --variant retention $D --T 1024,4096,16384 --pass fwd
ATTNBENCH_LIN_FUSED=mma sweep main-mma "$out/mma.csv" "$(cap 40 75)" --no-check --algo linear,gated --variant retention $D \
  --T 1024,4096,16384 --pass fwd
gtest mma ATTNBENCH_LIN_FUSED=mma \
  '*linear_tiled*:*gated_retention_tiled*:*gated_lightning_tiled*:*gated_scalar_tiled_fwd*' "$(cap 30 60)"
sweep extra-wg "$out/wg.csv" "$(cap 30 45)" --no-check --algo linear,gated --variant retention,lightning,scalar $D --T 4096 \
  --pass fwd,bwd
ATTNBENCH_LIN_FUSED=mma sweep extra-mma "$out/mma.csv" "$(cap 45 45)" --no-check --algo linear,gated \
  --variant retention,lightning,scalar $D --T 4096 --pass fwd,bwd
sweep checked-wg "$out/wg.csv" $(( $(left) - 10 )) --algo linear,gated --variant retention,scalar $D --T 1024 --pass fwd
grep -iE "error|fail" "$out/sweep.log" | head -10 >&2

python3 - "$out" <<'EOF' | tee "$out/ab.md"
# ONE CSV (fwd_kernel, then the harness columns) and the table: T, variant, kernel, ms, x floor.
import csv, os, sys
out = sys.argv[1]
rows = []
for kern in ("wg", "mma"):
    p = os.path.join(out, kern + ".csv")
    if os.path.exists(p):
        for r in csv.DictReader(open(p)):
            rows.append(dict(fwd_kernel=kern, **r))
if rows:
    with open(os.path.join(out, "lin_fwd_ab.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
pts = {}
for r in rows:
    if not r["ms_median"]:
        continue
    k = (r["algo"] + ("/" + r["variant"] if r["variant"] else ""), r["pass"], int(r["Tq"]), r["status"])
    pts.setdefault(k, {})[r["fwd_kernel"]] = (float(r["ms_median"]), float(r["floor_ms"]) if r["floor_ms"] else None)
c = lambda x: "%.4f (%.2f)" % (x[0], x[0] / x[1]) if x and x[1] else ("%.4f" % x[0] if x else "")
print("| variant | pass | T | status | wgmma fused_wg_fwd ms (x floor) | mma.sync fused_fwd ms (x floor) | mma / wg |")
print("|---|---|---|---|---|---|---|")
for k in sorted(pts, key=lambda k: (k[1], k[0], k[2], k[3])):
    a, b = pts[k].get("wg"), pts[k].get("mma")
    print("| %s | %s | %d | %s | %s | %s | %s |" % (k[0], k[1], k[2], k[3], c(a), c(b), "%.2f" % (b[0] / a[0]) if a and b else ""))
EOF
# few files come back from the device tool: the logs in one archive, the per-kernel CSVs merged above
(cd "$out" && tar czf logs.tar.gz *.log && rm -f *.log && [[ -f lin_fwd_ab.csv ]] && rm -f wg.csv mma.csv)
cat "$out/tests.txt"
