#!/usr/bin/env bash
# A/B of the vector-gate forward on a GPU machine: the wgmma kernel fused_vec_wg_fwd (the default
# since session 7, "wg") against the mma.sync kernel fused_vec_fwd (ATTNBENCH_LIN_VEC=mma, "mma"),
# for gated/vector and gated/rwkv6. Runs the vector/rwkv6 tiled GPU tests under each, times bf16
# B=8 H=32 D=128 T=1024,4096,16384 fwd with each kernel (one process each, same run), merges both
# into ONE CSV with a leading column fwd_kernel, and prints the table last. (Session 7's call ran
# it before the switch, with "wg" as ATTNBENCH_LIN_VEC=wg and "default" as fused_vec.)
#   scripts/vec-wg-ab.sh OUT_DIR [BUILD_DIR]   (BUILD_DIR: an existing CUDA build, default build/gpu;
#                                               built here when its binaries are missing)
# Environment: VEC_AB_BUDGET_S (default 150).
set -uo pipefail
cd "$(dirname "$0")/.."
out=$1
bdir=${2:-build/gpu}
mkdir -p "$out"
budget=${VEC_AB_BUDGET_S:-150}
t_start=$SECONDS
left() { echo $((budget - (SECONDS - t_start))); }
log() { echo "[vec-wg-ab $((SECONDS - t_start))s] $*" >&2; }
bin=./$bdir/harness/attnbench
tests_bin=./$bdir/tests/kernels/kernels_tests
if [[ ! -x $bin || ! -x $tests_bin ]]; then
  cmake -S . -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${ATTNBENCH_CUDA_ARCH:-90a}" >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
  cmake --build "$bdir" -j 16 --target attnbench kernels_tests >>"$out/build.log" 2>&1 \
    || { grep -E "error|FAILED" -A5 "$out/build.log" | head -60; exit 1; }
fi
: >"$out/tests.txt"
source scripts/device-lib.sh  # gtest()
gtest vec_wg "" '*gated_vector_tiled*:*gated_rwkv6_tiled*' $(( $(left) / 5 ))
gtest vec_mma ATTNBENCH_LIN_VEC=mma '*gated_vector_tiled_fwd*:*gated_rwkv6_tiled_fwd*' $(( $(left) / 5 ))
args="--dtype bf16 --budget-ms 60 --max-samples 30 --no-check --algo gated --variant vector,rwkv6 --impl tiled
  --B 8 --H 32 --D 128 --T 1024,4096,16384 --pass fwd"
n=2
for k in wg mma; do  # an even share of what is left to each kernel (T = 16384 is most of it)
  s=$(( $(left) / n - 5 )); n=$((n - 1)); ((s < 15)) && { log "skip $k"; continue; }
  log "sweep $k (limit ${s}s)"
  env ATTNBENCH_LIN_VEC=$k timeout "$s" "$bin" run $args --out "$out/$k.csv" >>"$out/sweep.log" 2>&1
done
python3 - "$out" <<'PY' | tee "$out/vec_ab.md"
import csv, os, sys
out = sys.argv[1]
rows = []
for k in ("wg", "mma"):
    p = os.path.join(out, k + ".csv")
    if os.path.exists(p):
        rows += [dict(fwd_kernel=k, **r) for r in csv.DictReader(open(p))]
if rows:
    with open(os.path.join(out, "vec_wg_ab.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
pts = {}
for r in rows:
    if r["ms_median"]:
        pts.setdefault((r["variant"], int(r["Tq"])), {})[r["fwd_kernel"]] = (float(r["ms_median"]), float(r["floor_ms"] or 0))
c = lambda x: "%.4f (%.2f)" % (x[0], x[0] / x[1]) if x and x[1] else ""
print("| variant | T | wg ms (x floor) | mma ms (x floor) | mma / wg |")
print("|---|---|---|---|---|")
for k in sorted(pts):
    a, b = pts[k].get("wg"), pts[k].get("mma")
    print("| %s | %d | %s | %s | %s |" % (k[0], k[1], c(a), c(b), "%.2f" % (b[0] / a[0]) if a and b else ""))
PY
rm -f "$out/wg.csv" "$out/mma.csv"
cat "$out/tests.txt"
