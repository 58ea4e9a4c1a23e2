#!/bin/bash
# Runs the kernel tests at tiny shapes under Oclgrind (a simulated OpenCL device that checks every
# memory access and work-group synchronisation), with both kernel variants, and fails on any
# invalid read or write, data race, barrier divergence or OpenCL API error in its log.
#   scripts/oclgrind.sh [BUILD_DIR]      (default: build; scripts/test.sh runs it)
# Each tests/test_ops_<family>.c that launches kernels has a Check test case named "tiny" with
# small shapes (odd sizes, stride 2, batch > 1) that this script runs alone (CK_RUN_CASE=tiny).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
if ! command -v oclgrind >/dev/null 2>&1; then
  echo "oclgrind: not installed (apt-get install oclgrind; scripts/install-deps.sh does it)" >&2
  exit 1
fi
# Every op family's test program must have a tiny case; list the ones that launch kernels.
# STFPM_OCLGRIND_PROGRAMS="..." runs a subset.
programs="${STFPM_OCLGRIND_PROGRAMS:-test_ops_elementwise test_ops_reduce test_ops_sgd test_ops_batchnorm test_ops_pool
          test_ops_loss test_ops_upsample test_ops_conv test_ops_winograd test_ops_gemm}"
fails=0
runs=0
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
for p in $programs; do
  bin="$build/$p"
  [ -x "$bin" ] || { echo "oclgrind: $bin missing (build first)" >&2; fails=1; continue; }
  for variant in cpu gpu; do
    log="$logdir/$p.$variant.log"
    out="$logdir/$p.$variant.out"
    # no fork (Oclgrind's runtime does not survive it), no program cache (it would hold
    # binaries of another device), the GPU variant under a 64-wide work-group limit
    if ! STFPM_DEVICE=Oclgrind STFPM_CACHE_DIR= STFPM_KERNELS=$variant STFPM_MAX_WORK_GROUP=64 \
         STFPM_SUB_BUFFER_ALIGN=512 CK_FORK=no CK_RUN_CASE=tiny \
         oclgrind --data-races --check-api --uninitialized --max-errors 20 --log "$log" "$bin" >"$out" 2>&1; then
      echo "oclgrind: $p ($variant) FAILED:"; tail -20 "$out"; fails=1
    fi
    if ! grep -qE "^[0-9]+%: Checks: [1-9]" "$out"; then
      echo "oclgrind: $p ($variant) ran no tiny case"; tail -5 "$out"; fails=1
    fi
    if [ -s "$log" ] && grep -qiE "invalid (read|write)|data race|divergence|error|uninitiali" "$log"; then
      echo "oclgrind: $p ($variant): errors in the Oclgrind log:"; head -40 "$log"; fails=1
    fi
    runs=$((runs + 1))
  done
done
if [ "$fails" = 0 ]; then
  echo "oclgrind: $runs runs clean ($(echo $programs | wc -w) programs x 2 kernel variants)"
else
  echo "oclgrind: FAILED"
fi
[ "$fails" = 0 ]
