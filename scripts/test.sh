#!/bin/bash
# The one command that sets up and runs the tests: installs packages, builds, runs CTest.
#   scripts/test.sh            all tests (release build)
#   scripts/test.sh -L ops     a subset by label (ops, parity, metrics, e2e, io, cli)
# STFPM_SANITIZE=1 also builds with ASan + UBSan and runs the suite there (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
export STFPM_CACHE_DIR="${STFPM_CACHE_DIR:-$PWD/build/kernel-cache}"
(cd build && ctest --output-on-failure --timeout 900 "$@")
if [ "${STFPM_SANITIZE:-0}" = "1" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSTFPM_SANITIZE=ON -DSTFPM_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$jobs"
  export STFPM_CACHE_DIR="$PWD/build-asan/kernel-cache"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  (cd build-asan && ctest --output-on-failure --timeout 1800 -LE e2e "$@")
fi
