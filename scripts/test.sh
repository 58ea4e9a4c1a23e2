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
# Fuzz harnesses (libFuzzer, clang): a few seconds each over the committed corpus.
if [ "${STFPM_FUZZ:-1}" = "1" ] && command -v clang >/dev/null 2>&1; then
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSTFPM_BUILD_FUZZ=ON -DSTFPM_BUILD_BENCH=OFF >/dev/null
  if cmake --build build-fuzz -j"$jobs" --target fuzz_safetensors fuzz_pth fuzz_image >/dev/null; then
    fails=0
    for h in safetensors pth image; do
      tmp=$(mktemp -d)
      if ./build-fuzz/fuzz_$h -max_total_time="${STFPM_FUZZ_SECONDS:-10}" -print_final_stats=0 "$tmp" "tests/fuzz/corpus_$h" >"$tmp.log" 2>&1; then
        echo "fuzz_$h: $(grep -Eo 'Done [0-9]+ runs' "$tmp.log" || echo ok)"
      else
        echo "fuzz_$h FAILED:"; tail -30 "$tmp.log"; fails=1
      fi
      rm -rf "$tmp" "$tmp.log"
    done
    [ "$fails" = 0 ]
  else
    echo "fuzz: harnesses not built (clang without libFuzzer runtime?); skipped"
  fi
fi
if [ "${STFPM_SANITIZE:-0}" = "1" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSTFPM_SANITIZE=ON -DSTFPM_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$jobs"
  export STFPM_CACHE_DIR="$PWD/build-asan/kernel-cache"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  (cd build-asan && ctest --output-on-failure --timeout 1800 -LE e2e "$@")
fi
