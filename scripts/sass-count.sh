#!/usr/bin/env bash
# Static SASS opcode counts of the kernels whose name contains a substring, from a built object or
# binary (cuobjdump; on the device machine, where the toolkit has it). One line a kernel: its
# (shortened) name, its instruction count and the count of each opcode asked for. Use it to check
# what a change did to a kernel's code before (or without) a profile, e.g. the wgmma descriptors'
# moves to uniform registers:
#   scripts/sass-count.sh build/gpu/kernels/CMakeFiles/attnbench_kernels.dir/linear/based_tiled.cu.o \
#     fused_based_ws_fwd R2UR HGMMA UIADD3
set -uo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 OBJECT KERNEL_SUBSTRING [OPCODE ..]" >&2; exit 2; }
obj=$1 want=$2
shift 2
command -v cuobjdump >/dev/null || { echo "sass-count: no cuobjdump on this machine" >&2; exit 1; }
[[ -f $obj ]] || { echo "sass-count: OBJECT '$obj' not found" >&2; exit 1; }
cuobjdump -sass "$obj" | awk -v want="$want" -v ops="$*" '
  BEGIN { n = split(ops, op, " ") }
  function flush() {
    if (name == "") return
    line = sprintf("%s: %d instructions", substr(name, 1, 90), total)
    for (i = 1; i <= n; ++i) line = line sprintf(", %s %d", op[i], cnt[op[i]] + 0)
    print line
  }
  /Function : / { flush(); name = ""; total = 0; delete cnt; if (index($0, want)) name = $3; next }
  name != "" && /\/\*[0-9a-f]+\*\// {
    s = $0; sub(/^[ \t]*\/\*[0-9a-f]+\*\/[ \t]*/, "", s); sub(/^@!?U?P[0-9T] +/, "", s); split(s, w, /[ .;]/)
    if (w[1] == "") next
    ++total; ++cnt[w[1]]
  }
  END { flush() }'
