#!/bin/sh
# bench/ablations.sh end to end on a tiny generated category (demo data and random teachers
# written by the make_fixture tool, 64 x 64, 1 epoch): every row of the four tables, the
# level-4 rows as "needs a full teacher" with a conv1-layer3 teacher and trained with a full
# one, shared runs, no retraining on a second invocation, --resume when --epochs grows, a run
# folder made with another teacher refused, --table, and missing inputs.
set -eu
src="${STFPM_SOURCE_DIR:?}" bin="${STFPM_BINARY_DIR:?}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stfpm_ablations_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_bench_ablations: FAIL: $*" >&2; exit 1; }
"$bin/stfpm_make_fixture" "$tmp/t3.safetensors" "$tmp/cat" >/dev/null || fail "make_fixture"
"$bin/stfpm_make_fixture" "$tmp/t4.safetensors" "$tmp/cat4" 4 >/dev/null || fail "make_fixture (depth 4)"
abl() { bash "$src/bench/ablations.sh" "$@"; }
run() {   # OUT TEACHER [options]
  o=$1 t=$2; shift 2
  abl "$tmp/cat" "$o" --stfpm "$bin/stfpm" --epochs 1 --teacher "$t" --fractions 0.1,0.5 "$@" -- --size 64 --batch 4
}
num='[0-9]\.[0-9]{4}'
metrics="$num \| [0-9.n/a]+ \| (NaN|$num) \| [0-9.n/a]+ \| (NaN|$num) \| (NaN|$num) \| [0-9.n/a]+ \| 1 \|"

# 1. everything, with a conv1-layer3 teacher
run "$tmp/out" "$tmp/t3.safetensors" >"$tmp/tables1" 2>"$tmp/log1" || { cat "$tmp/log1" "$tmp/tables1"; fail "first run"; }
cat "$tmp/tables1"
for h in "### Table 3" "### Table 5" "### Checkpoint rule" "### Seed spread"; do
  grep -q "^$h" "$tmp/tables1" || fail "no section '$h'"
done
row() { grep -Eq "^\| $1 \| $2" "$tmp/tables1" || fail "no row '$1 | $2' in the tables"; }
row 1 "conv2_x \| $num \| 0\.808 "
row 2 "conv3_x \| $num \| 0\.917 "
row 3 "conv4_x \| $metrics"
row 1,2 "conv2_x \+ conv3_x \| $num \| 0\.849 "
row 2,3 "conv3_x \+ conv4_x \| $num \| n/a "
row 1,2,3 "conv2_x - conv4_x \| $num \| 0\.955 \| (NaN|$num) \| 0\.970 \| (NaN|$num) \| (NaN|$num) \| 0\.921 \| 1 \|"
row 4 "conv5_x \| needs a full teacher \| 0\.819 "
row 1,2,3,4 "conv2_x - conv5_x \| needs a full teacher \| 0\.949 "
row 0\\.1 "1 \| $num \| 0\.907 \| (NaN|$num) \| 0\.967 \| (NaN|$num) \| (NaN|$num) \| 0\.913 \| 1 \|"
row 0\\.5 "4 \| $num \| n/a "
row 1 "8 \| $num \| 0\.955 "
row loss "lowest validation loss \(the paper's\) \| $num \| 0\.955 "
row map "lowest mean validation map \(authors' code\) \| $num \| n/a "
for s in 0 1 2; do row "$s" "$num \| (NaN|$num) \| (NaN|$num) \| (NaN|$num) \| 1 \|"; done
row "max - min \(3 seeds\)" "[0-9.NaN]+ \|"
row "mean ± sd" "(NaN|$num ± $num) \|"
# rows with one configuration share one run: 6 level rows, 2 fractions, 1 map, 2 seeds
n=$(find "$tmp/out" -mindepth 1 -maxdepth 1 -type d | wc -l)
[ "$n" = 11 ] || { ls "$tmp/out"; fail "$n run folders, expected 11"; }
[ "$(grep -c ": training" "$tmp/log1")" = 11 ] || { cat "$tmp/log1"; fail "not 11 trainings"; }
grep -q "teacher has no layer4" "$tmp/log1" || fail "no message about the teacher's missing layer4"

# 2. again: nothing retrained, the same tables
run "$tmp/out" "$tmp/t3.safetensors" >"$tmp/tables2" 2>"$tmp/log2" || { cat "$tmp/log2"; fail "second run"; }
grep -q ": training\|: testing" "$tmp/log2" && { cat "$tmp/log2"; fail "the second run trained or tested again"; }
[ "$(grep -c "done before" "$tmp/log2")" = 11 ] || { cat "$tmp/log2"; fail "not 11 runs reused"; }
cmp -s "$tmp/tables1" "$tmp/tables2" || { diff "$tmp/tables1" "$tmp/tables2"; fail "the tables changed without training"; }
abl "$tmp/cat" "$tmp/out" --table --epochs 1 --fractions 0.1,0.5 -- --size 64 --batch 4 >"$tmp/tables3" 2>"$tmp/log3" \
  || { cat "$tmp/log3"; fail "--table"; }
cmp -s "$tmp/tables1" "$tmp/tables3" || { diff "$tmp/tables1" "$tmp/tables3"; fail "--table printed other tables"; }

# 3. a larger --epochs resumes a run (a copy, so that the first OUT keeps its 1-epoch runs)
mkdir "$tmp/out2" && cp -R "$tmp/out/L123_F1_loss_S1" "$tmp/out2/"
run "$tmp/out2" "$tmp/t3.safetensors" --epochs 2 --only seeds --seeds 1 >"$tmp/tables4" 2>"$tmp/log4" \
  || { cat "$tmp/log4"; fail "--epochs 2"; }
grep -q "L123_F1_loss_S1: training .*epochs 2-2, resumed" "$tmp/log4" || { cat "$tmp/log4"; fail "no resume"; }
grep -q '"epoch": *"2"' "$tmp/out2/L123_F1_loss_S1/run/last.safetensors" || fail "the resumed run did not reach epoch 2"
grep -Eq "^\| 1 \| $num" "$tmp/tables4" || fail "no seed row after resuming"
grep -q "max - min" "$tmp/tables4" && fail "a spread over one seed"
# the same folder with another teacher: refused, non-zero exit
if run "$tmp/out2" "$tmp/t4.safetensors" --epochs 2 --only seeds --seeds 1 >"$tmp/tables5" 2>"$tmp/log5"; then
  fail "a run folder made with another teacher was reused"
fi
grep -q "made with other inputs" "$tmp/log5" || { cat "$tmp/log5"; fail "no message about the other teacher"; }

# 4. a full teacher trains the level-4 rows
run "$tmp/out4" "$tmp/t4.safetensors" --only table3 >"$tmp/tables6" 2>"$tmp/log6" || { cat "$tmp/log6"; fail "full teacher"; }
grep -q "needs a full teacher" "$tmp/tables6" && fail "a level-4 row needs a full teacher with a full teacher"
grep -Eq "^\| 4 \| conv5_x \| $metrics" "$tmp/tables6" || { cat "$tmp/tables6"; fail "no level-4 row"; }
grep -Eq "^\| 1,2,3,4 \| conv2_x - conv5_x \| $num \| 0\.949 " "$tmp/tables6" || fail "no level 1-4 row"
grep -q "### Table 5" "$tmp/tables6" && fail "--only table3 printed Table 5"

# 5. missing inputs: non-zero exit and a message
expect_error() {   # message-pattern command...
  pat=$1; shift
  if "$@" >"$tmp/err_out" 2>"$tmp/err"; then fail "no error for: $*"; fi
  grep -q "$pat" "$tmp/err" || { cat "$tmp/err"; fail "no message '$pat' for: $*"; }
}
expect_error "no such folder" abl "$tmp/nowhere" "$tmp/o" --stfpm "$bin/stfpm" --teacher "$tmp/t3.safetensors"
mkdir -p "$tmp/nocat/train/good"
expect_error "not an MVTec AD category" abl "$tmp/nocat" "$tmp/o" --stfpm "$bin/stfpm" --teacher "$tmp/t3.safetensors"
expect_error "teacher .*no such file" abl "$tmp/cat" "$tmp/o" --stfpm "$bin/stfpm" --teacher "$tmp/none.safetensors"
mkdir -p "$tmp/empty_home"
expect_error "no teacher" env -u STFPM_TEACHER TORCH_HOME="$tmp/empty_home" \
  bash "$src/bench/ablations.sh" "$tmp/cat" "$tmp/o" --stfpm "$bin/stfpm"
expect_error "no such program" abl "$tmp/cat" "$tmp/o" --stfpm "$tmp/no_stfpm" --teacher "$tmp/t3.safetensors"
expect_error "unknown section" abl "$tmp/cat" "$tmp/o" --only table4 --stfpm "$bin/stfpm" --teacher "$tmp/t3.safetensors"
[ -d "$tmp/o" ] && fail "a failed check left an output folder"
echo "test_bench_ablations: ok"
