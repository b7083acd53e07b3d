#!/usr/bin/env bash
# Install dependencies, build, run the default sweep and plot it: results/<run>/results.csv and
# results/<run>/plots/*.png. Extra arguments go to `attnbench run` (e.g. --algo softmax).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target attnbench
run="results/$(date -u +%Y%m%d-%H%M%S)"
status=0
./build/release/harness/attnbench run --out "$run/results.csv" "$@" || status=$?
python=python3
[[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import matplotlib' 2>/dev/null && python=/usr/bin/python3
"$python" scripts/plot.py "$run/results.csv"
echo "results: $run/results.csv, plots: $run/plots/"
exit $status
