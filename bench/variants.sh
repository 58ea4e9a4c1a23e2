#!/bin/bash
# How far apart the two kernel variants' trained models are, against how far apart the CPU
# variant is from itself when only the order of floating-point sums changes.
#
#   bench/variants.sh [--out DIR] [--teacher FILE] [--stfpm BIN] [--quick]
#
# Runs `stfpm demo` (generated data, 15 epochs, test) once per configuration below, each in
# DIR/<name>/ (default: a new temporary folder), and prints one Markdown table: per run image
# AUROC, pixel AUROC, AU-PRO and the paper-protocol PRO, the difference of each from the first
# (CPU-variant) run, and per variant the mean and the range of every metric over its runs and
# the difference of the two variants' means.
#
# Every configuration computes the same function; they differ only in how sums are split and
# ordered (Winograd or im2col convolutions, chunk sizes that split the weight-gradient
# reductions, work-group sizes of the GPU variant's tree reductions). Training amplifies those
# last-bit differences, so the CPU variant's own range is the noise floor a comparison of the
# variants has to be read against. --quick: two runs per variant instead of four. A run whose
# DIR/<name>/metrics.json exists is not run again (pass the same --out to reprint the table).
#
# Exit status: 0 when every run finished, 1 when one failed (its log is named).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
out="" teacher=() stfpm="" quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$(abs "$2"); shift 2 ;;
    --teacher) teacher=(--teacher "$(abs "$2")"); shift 2 ;;
    --stfpm) stfpm=$(abs "$2"); shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "variants.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$stfpm" ]; then
  stfpm="$here/build/stfpm"
  if [ ! -x "$stfpm" ]; then
    echo "variants.sh: $stfpm not found; build first (cmake -S . -B build && cmake --build build -j)" >&2
    exit 1
  fi
fi
[ -x "$stfpm" ] || { echo "variants.sh: $stfpm is not an executable" >&2; exit 1; }
[ -n "$out" ] || out=$(mktemp -d "${TMPDIR:-/tmp}/stfpm-variants.XXXXXX")
mkdir -p "$out" || exit 1

# name|variant|environment (space-separated assignments)
configs=(
  "cpu|cpu|STFPM_KERNELS=cpu"
  "cpu-im2col|cpu|STFPM_KERNELS=cpu STFPM_CONV_ALGO=im2col"
  "cpu-chunks|cpu|STFPM_KERNELS=cpu STFPM_CONV_CHUNK_BYTES=1048576 STFPM_WINO_CHUNK_BYTES=1048576"
  "cpu-im2col-chunks|cpu|STFPM_KERNELS=cpu STFPM_CONV_ALGO=im2col STFPM_CONV_CHUNK_BYTES=1048576"
  "gpu|gpu|STFPM_KERNELS=gpu"
  "gpu-im2col|gpu|STFPM_KERNELS=gpu STFPM_CONV_ALGO=im2col"
  "gpu-wg64|gpu|STFPM_KERNELS=gpu STFPM_MAX_WORK_GROUP=64"
  "gpu-im2col-wg64|gpu|STFPM_KERNELS=gpu STFPM_CONV_ALGO=im2col STFPM_MAX_WORK_GROUP=64"
)
[ "$quick" = 1 ] && configs=("${configs[0]}" "${configs[1]}" "${configs[4]}" "${configs[5]}")

# metric KEY FILE: the number after "KEY": in a metrics.json
metric() { sed -n "s/.*\"$1\": *\([-0-9.eE+]*\).*/\1/p" "$2" | head -n 1; }

rows=() failed=0
for c in "${configs[@]}"; do
  IFS='|' read -r name variant envs <<<"$c"
  dir="$out/$name"
  if [ ! -f "$dir/metrics.json" ]; then
    rm -rf "$dir"
    start=$(date +%s)
    echo "variants.sh: $name ($envs) ..." >&2
    # shellcheck disable=SC2086  # envs is a list of assignments
    if ! env $envs "$stfpm" demo --out "$dir" ${teacher[@]+"${teacher[@]}"} >"$out/$name.log" 2>&1; then
      echo "variants.sh: $name failed, see $out/$name.log" >&2
      failed=1
      continue
    fi
    echo "variants.sh: $name done in $(( $(date +%s) - start )) s" >&2
  fi
  rows+=("$name|$variant|$envs|$(metric image_auroc "$dir/metrics.json")|$(metric pixel_auroc "$dir/metrics.json")|$(metric aupro "$dir/metrics.json")|$(metric pro_paper "$dir/metrics.json")")
done
[ ${#rows[@]} -gt 0 ] || exit 1

printf '%s\n' "${rows[@]}" | awk -F'|' '
  { name[NR] = $1; var[NR] = $2; env[NR] = $3; for (k = 1; k <= 4; k++) m[NR, k] = $(k + 3) + 0 }
  END {
    print "| run | settings | image AUROC | pixel AUROC | AU-PRO | PRO (paper) | max abs. difference from " name[1] " |"
    print "|---|---|---|---|---|---|---|"
    for (i = 1; i <= NR; i++) {
      d = 0
      for (k = 1; k <= 4; k++) { x = m[i, k] - m[1, k]; if (x < 0) x = -x; if (x > d) d = x }
      printf "| %s | `%s` | %.5f | %.5f | %.5f | %.5f | %.2e |\n", name[i], env[i], m[i, 1], m[i, 2], m[i, 3], m[i, 4], d
    }
    print ""
    print "| variant | runs | image AUROC | pixel AUROC | AU-PRO | PRO (paper) |"
    print "|---|---|---|---|---|---|"
    nv = split("cpu gpu", vs, " ")
    for (j = 1; j <= nv; j++) {
      v = vs[j]; n[j] = 0
      for (k = 1; k <= 4; k++) { lo[k] = 1e9; hi[k] = -1e9; mean[j, k] = 0 }
      for (i = 1; i <= NR; i++) if (var[i] == v) {
        n[j]++
        for (k = 1; k <= 4; k++) { mean[j, k] += m[i, k]; if (m[i, k] < lo[k]) lo[k] = m[i, k]; if (m[i, k] > hi[k]) hi[k] = m[i, k] }
      }
      if (!n[j]) continue
      for (k = 1; k <= 4; k++) mean[j, k] /= n[j]
      printf "| %s, mean | %d | %.5f | %.5f | %.5f | %.5f |\n", v, n[j], mean[j, 1], mean[j, 2], mean[j, 3], mean[j, 4]
      printf "| %s, range (max - min) | %d | %.2e | %.2e | %.2e | %.2e |\n", v, n[j], hi[1] - lo[1], hi[2] - lo[2], hi[3] - lo[3], hi[4] - lo[4]
    }
    if (n[1] && n[2]) {
      printf "| gpu mean - cpu mean | | %+.2e | %+.2e | %+.2e | %+.2e |\n", mean[2, 1] - mean[1, 1], mean[2, 2] - mean[1, 2], mean[2, 3] - mean[1, 3], mean[2, 4] - mean[1, 4]
    }
  }'
exit "$failed"
