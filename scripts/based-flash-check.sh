#!/usr/bin/env bash
# based's quadratic form on the tiled softmax-family flash kernels (TaylorScore, session 11) on a GPU
# machine: builds attnbench and kernels_tests, runs every based GPU test (the flash path takes the
# Dk = Dv = 64 / 128 shapes), sweeps flash-linear-attention's table (bf16 B=8 H=32 D=128, T = 128 ..
# 16384, fwd and bwd, each point checked on one sampled slice) with the default (flash), times the
# quadratic mma.sync form (ATTNBENCH_BASED_QUAD=mma) and causal softmax/tiled at T = 1024, 4096 in
# the same run, and prints the published-table comparison (attnbench suite fla_a100_2024 --from)
# and a table of ms last.
#   scripts/based-flash-check.sh [OUT_DIR]   (default: $OUT on the device tool, else results/based-flash)
# Environment: BASED_FLASH_BUDGET_S (whole script, default 330), BASED_FLASH_BUILD (build folder,
# default build/gpu), BASED_FLASH_T (the checked sweep's T list, default 128:16384:x2),
# ATTNBENCH_CUDA_ARCH (default 90a).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-lib.sh  # ab_start(), ab_build(), gtest(), sweep()
ab_start based-flash "${1:-${OUT:-results/based-flash}}" "${BASED_FLASH_BUDGET_S:-330}"
ab_build "${BASED_FLASH_BUILD:-build/gpu}"
S="--B 8 --H 32 --D 128"
gtest based "" '*based*' "$(cap 30 120)"
sweep flash "$out/flash.csv" "$(cap 60 200)" --algo based --impl tiled $S --T "${BASED_FLASH_T:-128:16384:x2}" \
  --pass fwd,bwd --oracle sampled
ATTNBENCH_BASED_QUAD=mma sweep mma "$out/mma.csv" "$(cap 40 60)" --no-check --algo based --impl tiled $S \
  --T 1024,4096 --pass fwd,bwd
sweep softmax "$out/softmax.csv" "$(cap 40 40)" --no-check --algo softmax --impl tiled $S --causal yes \
  --T 1024,4096 --pass fwd,bwd
grep -iE "error|fail" "$out/sweep.log" | head -10 >&2
cat "$out/tests.txt"
"$bin" suite fla_a100_2024 --from "$out/flash.csv" >"$out/fla_table.md" 2>&1
grep -E "^\| based|^[0-9]+ rows" "$out/fla_table.md"

python3 - "$out" <<'EOF' | tee "$out/table.md"
# ms of fwd and bwd per T: based flash (checked), based mma (the quadratic mma.sync form), causal
# softmax/tiled; the same run.
import csv, os, sys
out = sys.argv[1]
ms = {}
for name in ("flash", "mma", "softmax"):
    p = os.path.join(out, name + ".csv")
    if not os.path.exists(p):
        continue
    for r in csv.DictReader(open(p)):
        if r["ms_median"]:
            ms[(name, int(r["Tq"]), r["pass"])] = (float(r["ms_median"]), r["status"])
print("| T | pass | based flash (status) | based mma | flash / mma | softmax causal |")
print("|---|---|---|---|---|---|")
for T in sorted({k[1] for k in ms}):
    for ps in ("fwd", "bwd"):
        f, m, s = ms.get(("flash", T, ps)), ms.get(("mma", T, ps)), ms.get(("softmax", T, ps))
        if not f:
            continue
        print("| %d | %s | %.4f (%s) | %s | %s | %s |" % (T, ps, f[0], f[1], "%.4f" % m[0] if m else "",
                                                       "%.2f" % (f[0] / m[0]) if m else "", "%.4f" % s[0] if s else ""))
EOF
(cd "$out" && tar czf logs.tar.gz *.log && rm -f *.log)
