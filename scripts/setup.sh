#!/usr/bin/env bash
# Install attnbench's build dependencies from Debian/Ubuntu packages (skipped when present).
# The CUDA toolkit is optional and not installed here: with /usr/local/cuda/bin/nvcc (or $CUDACXX)
# the CUDA kernels are built too.
set -euo pipefail
packages=(cmake ninja-build g++ libeigen3-dev libcli11-dev libfmt-dev libgtest-dev libbenchmark-dev python3-matplotlib)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all dependencies present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
