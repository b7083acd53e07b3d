#!/usr/bin/env bash
# Where the gated vector-gate kernels spend their time, on a GPU machine (measurement only: the
# ablated kernels compute wrong results and are never checked):
#   1. the wgmma forward fused_vec_wg_fwd with parts skipped (ATTNBENCH_LIN_VEC=abl<N>, bits in
#      kernels/linear/linear_family_tiled_fused_launch.h), bf16 vector, B=8 H=32 D=128, one process
#      per N, T = LIN_ABL_T (default 4096) -> vec_abl.csv, vec_abl.md (ms and x floor);
#   2. the backward's launches timed apart and gated_bwd_chunk2 with phases skipped
#      (ATTNBENCH_LIN_GBWD=abl+prof timeout 120 "$bin" run --algo gated --impl tiled --dtype bf16 --B 8 --H 32 --D 128 \
  --T "${LIN_ABL_T:-4096}" --no-check --budget-ms 10 --min-samples 5 --max-samples 5 --variant vector,rwkv6 --pass bwd \
  --out "$out/gbwd.csv" 2>&1 | grep -E "gbwd-(abl|prof)" | tail -8 >"$out/gbwd_abl.txt"
python3 - "$out/vec_abl.csv" <<'EOF' | tee "$out/vec_abl.md"
import csv, sys
print("| ATTNBENCH_LIN_VEC | T | ms | x floor |")
print("|---|---|---|---|")
for r in csv.DictReader(open(sys.argv[1])):
    if r["ms_median"]:
        print(f"| {r['abl']} | {r['Tq']} | {float(r['ms_median']):.4f} | {float(r['ms_median']) / float(r['floor_ms']):.2f} |")
EOF
cat "$out/gbwd_abl.txt"
