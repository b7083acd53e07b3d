#!/bin/bash
# gbwd helper device run (not committed). Run from .wt/gbwd; ROOT = the lead's checkout (before).
set -u
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
ROOT=$(cd ../.. && pwd)
CM="-G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a"
cmake -S . -B build/dev $CM > $OUT/cmake_after.log 2>&1
timeout 160 ninja -C build/dev -j 16 attnbench kernels_tests > $OUT/build_after.log 2>&1; el "after build rc=$?"
( cd $ROOT && cmake -S . -B build/gbwd_before $CM > $OUT/cmake_before.log 2>&1 && \
  timeout 190 nice -n 10 ninja -C build/gbwd_before -j 8 attnbench > $OUT/build_before.log 2>&1; echo "before build rc=$?" > $OUT/before_rc.txt ) &
BP=$!
ctest --test-dir build/dev -N -R 'gated|Gated' | tail -1
timeout 100 ctest --test-dir build/dev -R 'gated|Gated' -j 16 --output-on-failure > $OUT/tests.log 2>&1; el "ctest rc=$?"
grep -E "tests passed|tests failed|Failed|\*\*\*" $OUT/tests.log | head -20
wait $BP; cat $OUT/before_rc.txt; el "before built"
RUN="run --algo gated --impl tiled --pass bwd --B 8 --H 32 --D 128 --dtype bf16 --no-check"
tab() { echo "file,variant,T,status,ms_median"; for f in $OUT/gbwd_*.csv; do
  awk -F, -v t=$(basename $f .csv) 'NR>1{print t","$2","$9","$15","$21}' $f; done; }
for T in 4096 1024; do
  V=vector,rwkv6,retention; [ $T = 1024 ] && V=vector,rwkv6,scalar
  for tag in after before; do
    BIN=build/dev/harness/attnbench; [ $tag = before ] && BIN=$ROOT/build/gbwd_before/harness/attnbench
    timeout $(( T / 90 + 8 )) $BIN $RUN --variant $V --T $T --out $OUT/gbwd_$tag.csv >> $OUT/run_$tag.log 2>&1
    el "$tag T=$T rc=$?"
  done
done
tab
