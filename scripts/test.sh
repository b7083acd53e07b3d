#!/usr/bin/env bash
# Build everything with warnings as errors and run every test (the README's test command; CI runs
# exactly this). GPU tests run on a machine with a usable GPU and skip, with the reason, elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset ci
cmake --build --preset ci -j "$(nproc)"
status=0
ctest --preset ci -j "$(nproc)" || status=$?
# GPU tests skip without a usable GPU; say why once, in the log.
echo "test.sh: $(./build/ci/harness/attnbench list | tail -1)"
exit $status
