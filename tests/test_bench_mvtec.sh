#!/bin/sh
# bench/mvtec.sh end to end on two tiny categories (a random teacher and demo data written by
# the make_fixture tool): two jobs in parallel on two device selectors, the table with both
# categories and finite metrics, no re-run of finished categories, --only and --table (the
# job-array path).
set -eu
src="${STFPM_SOURCE_DIR:?}" bin="${STFPM_BINARY_DIR:?}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stfpm_mvtec_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_bench_mvtec: FAIL: $*" >&2; exit 1; }
"$bin/stfpm_make_fixture" "$tmp/teacher.safetensors" "$tmp/root/alpha" >/dev/null || fail "make_fixture"
"$bin/stfpm_make_fixture" "$tmp/teacher2.safetensors" "$tmp/root/beta" >/dev/null || fail "make_fixture"
mkdir -p "$tmp/root/not_a_category"
run() { bash "$src/bench/mvtec.sh" "$tmp/root" --stfpm "$bin/stfpm" --out "$tmp/out" --epochs 1 \
          --teacher "$tmp/teacher.safetensors" "$@"; }
run --devices "0,0" -- --size 64 --batch 4 >"$tmp/log1" 2>&1 || { cat "$tmp/log1"; fail "first run"; }
cat "$tmp/log1"
for c in alpha beta; do
  [ -f "$tmp/out/$c/metrics.json" ] || fail "no metrics.json for $c"
  grep -Eq "^$c +\| [0-9]\.[0-9]{3} / - +\| [0-9]\.[0-9]{3} / - +\| [0-9]\.[0-9]{3} +\| [0-9]\.[0-9]{3} / -" "$tmp/log1" \
    || fail "no table row with four metrics for $c"
done
grep -q "not_a_category" "$tmp/log1" && fail "a folder without train/good was taken as a category"
grep -Eq "^mean \(2\) +\| [0-9]\.[0-9]{3} / 0\.955 +\| [0-9]\.[0-9]{3} / 0\.970" "$tmp/log1" || fail "no mean row with the paper's means"
run -- --size 64 --batch 4 >"$tmp/log2" 2>&1 || { cat "$tmp/log2"; fail "second run"; }
[ "$(grep -c "done before" "$tmp/log2")" = 2 ] || { cat "$tmp/log2"; fail "finished categories ran again"; }
rm "$tmp/out/beta/metrics.json"
run --only beta -- --size 64 --batch 4 >"$tmp/log3" 2>&1 || { cat "$tmp/log3"; fail "--only beta"; }
grep -q "beta: training" "$tmp/log3" || fail "--only beta did not train beta"
grep -q "alpha: " "$tmp/log3" && fail "--only beta touched alpha"
run --table >"$tmp/log4" 2>&1 || { cat "$tmp/log4"; fail "--table"; }
grep -Eq "^beta +\| [0-9]" "$tmp/log4" && grep -Eq "^alpha +\| [0-9]" "$tmp/log4" || fail "--table misses a category"
grep -q "training" "$tmp/log4" && fail "--table trained"
echo "test_bench_mvtec: ok"
