#!/bin/bash
# The one command that sets up and runs the tests: installs packages, builds, runs CTest.
#   scripts/test.sh            all tests (release build)
#   scripts/test.sh -L ops     a subset by label (ops, parity, metrics, e2e, io, cli)
# STFPM_SANITIZE=1 also builds with ASan + UBSan and runs the suite there (CI does).
# Each CTest run ends with a count line, "ctest (<build dir>): P passed, F failed, S skipped",
# repeated at the very end of the script (also when it fails). Skipped: programs that exit 77
# because nothing they check could run here (tests/testutil.h).
set -euo pipefail
cd "$(dirname "$0")/.."

summaries=()
print_summaries() {
  local line
  for line in ${summaries[@]+"${summaries[@]}"}; do echo "$line"; done
}

# run_ctest DIR ARGS...: ctest ARGS in DIR; its exit status is returned unchanged.
# Counts come from CTest's own output: "N tests failed out of M" (M includes skipped tests) and
# one "***Skipped" progress line per skipped test; the passed count is cross-checked against
# the "Passed" progress lines, and no count line is printed when they disagree.
run_ctest() {
  local dir=$1 log rc=0
  shift
  log=$(mktemp)
  (cd "$dir" && ctest "$@") 2>&1 | tee "$log" || rc=$?
  local progress='^ *[0-9]+/[0-9]+ +Test +#[0-9]+: '
  local summary failed total skipped passed line names
  summary=$(grep -Eo '[0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
  skipped=$(grep -cE "$progress"'.*\*\*\*Skipped' "$log" || true)
  passed=$(grep -cE "$progress"'.* Passed +[0-9.]+ sec' "$log" || true)
  if [ -n "$summary" ]; then
    failed=${summary%% *}
    total=${summary##* }
    if [ $((passed + failed + skipped)) -eq "$total" ]; then
      line="ctest ($dir): $passed passed, $failed failed, $skipped skipped"
      if [ "$skipped" -gt 0 ]; then
        names=$(grep -E "$progress"'.*\*\*\*Skipped' "$log" | sed -E 's/.*Test +#[0-9]+: ([^ ]+) .*/\1/' | paste -sd ' ' - || true)
        line="$line: $names"
      fi
    else
      line="ctest ($dir): counts unclear: $summary, but $passed passed and $skipped skipped progress lines (exit status $rc)"
    fi
  else
    line="ctest ($dir): no summary line in CTest's output (exit status $rc)"
  fi
  echo "$line"
  summaries+=("$line")
  rm -f "$last_log"
  last_log=$log
  return "$rc"
}
last_log=""
trap 'print_summaries; rm -f "$last_log"' EXIT

# 0 when the CTest output in $1 has failures and every failed test's output shows LeakSanitizer's
# own tracer crash ("LeakSanitizer has encountered a fatal error", a known intermittent bug of the
# sanitizer runtime while it stops the program's threads at exit; not a leak report), and no
# sanitizer finding or failed check.
lsan_tracer_only() {
  local log=$1 failed crashes
  failed=$(grep -cE '^ *[0-9]+/[0-9]+ +Test +#[0-9]+: .*\*\*\*(Failed|Exception)' "$log" || true)
  crashes=$(grep -c 'LeakSanitizer has encountered a fatal error' "$log" || true)
  [ "$failed" -gt 0 ] && [ "$crashes" -ge "$failed" ] &&
    ! grep -qE 'ERROR: (LeakSanitizer: detected|AddressSanitizer)|runtime error:|Failures: [1-9]' "$log"
}
bash scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
export STFPM_CACHE_DIR="${STFPM_CACHE_DIR:-$PWD/build/kernel-cache}"
run_ctest build --output-on-failure --timeout 900 "$@"
# The kernel tests' tiny cases under Oclgrind (races, out-of-bounds accesses, API errors), both
# kernel variants; only for the whole suite (STFPM_OCLGRIND=0 skips it).
if [ $# -eq 0 ] && [ "${STFPM_OCLGRIND:-1}" = "1" ]; then
  bash scripts/oclgrind.sh build
fi
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
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}" LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp}" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  rc=0
  run_ctest build-asan --output-on-failure --timeout 1800 -LE e2e "$@" || rc=$?
  if [ "$rc" -ne 0 ] && lsan_tracer_only "$last_log"; then
    line="ASan: every failure above is LeakSanitizer's tracer crash at exit (not a finding); those tests once more:"
    echo "$line"
    summaries+=("$line")
    rc=0
    run_ctest build-asan --output-on-failure --timeout 1800 --rerun-failed || rc=$?
  fi
  [ "$rc" -eq 0 ] || exit "$rc"
fi
