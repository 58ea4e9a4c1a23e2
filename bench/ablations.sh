#!/bin/bash
# The paper's ablations on one MVTec AD category, with the command-line program: the pyramid
# levels (paper Table 3), few-shot training fractions (paper Table 5), the checkpoint rule
# (validation loss, the paper's, against the mean validation anomaly map, the authors' code's)
# and the spread over training seeds. Prints one Markdown table per ablation on standard output
# (progress goes to standard error), with our image AUROC, pixel AUROC, AU-PRO and paper-protocol
# PRO beside the paper's numbers (means over the 15 MVTec AD categories; docs/SPEC.md section 8).
#
#   bench/ablations.sh DATA OUT [--epochs N] [--teacher FILE] [--only LIST] [--seeds LIST]
#                      [--fractions LIST] [--stfpm BIN] [--table] [-- TRAIN_OPTIONS...]
#
#   DATA            one MVTec AD category (a folder with train/good and test/)
#   OUT             the runs: OUT/<run>/ per configuration (run/ is the stfpm train folder, then
#                   metrics.json, train.log, test.log, inputs.txt, times.tsv)
#   --epochs N      training epochs of every run (default 8: all four sections, nine trainings
#                   on the whole training set and two small ones, took 30 min on bottle on two
#                   shared CPU cores; the paper's recipe is 100: say which when reporting)
#   --teacher FILE  the ImageNet ResNet-18 (default: $STFPM_TEACHER, else torchvision's
#                   resnet18-*.pth in the torch hub cache, as `stfpm train` looks for it). The
#                   level-4 rows need a full ResNet-18 (with layer4); with a conv1-layer3 file they
#                   are printed as "needs a full teacher"
#   --only LIST     comma-separated sections among table3, table5, ckpt, seeds (default: all)
#   --seeds LIST    the seeds of the seed spread (default 0,1,2)
#   --fractions LIST  the few-shot training fractions (default 0.05,0.1: the paper's Table 5);
#                   the full training set (1) is always printed beside them
#   --stfpm BIN     the program to run (default: build/stfpm, built first)
#   --table         train nothing: print the tables of what OUT holds (at the same --epochs)
#   after --, options for `stfpm train` given to every run (e.g. --size 256 --batch 32, the
#   defaults); the ablated option of a row (--layers, --train-fraction, --checkpoint-by, --seed)
#   comes after them and wins
#
# Rows with the same configuration share one run: the default recipe (layers 1,2,3, the whole
# training set, checkpoint by validation loss, seed 0) is one training for Table 3, Table 5,
# the checkpoint table and seed 0. A run whose checkpoint has reached N epochs and whose
# metrics.json is newer than it is not run again; a shorter one resumes (`stfpm train --resume`),
# so an interrupted invocation continues where it stopped and a larger --epochs extends the
# runs. A run folder made with another teacher, data folder or TRAIN_OPTIONS is refused (delete
# it or choose another OUT). Run it at low priority on a shared machine (nice -n 19).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
me=ablations.sh
abs() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
die() { echo "$me: $*" >&2; exit 1; }
log() { echo "$me: $*" >&2; }
if [ $# -lt 2 ]; then sed -n '2,38p' "$0" >&2; exit 2; fi
case "$1" in -*) sed -n '2,38p' "$0" >&2; exit 2 ;; esac
data=$(abs "$1"); out=$(abs "$2"); out_shown=$2; shift 2
epochs=8 teacher="" only="table3,table5,ckpt,seeds" seeds="0,1,2" fractions="0.05,0.1" stfpm="" table_only=0
extra=()
need() { [ $# -ge 2 ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) need "$@"; epochs=$2; shift 2 ;;
    --teacher) need "$@"; teacher=$(abs "$2"); shift 2 ;;
    --only) need "$@"; only=$2; shift 2 ;;
    --seeds) need "$@"; seeds=$2; shift 2 ;;
    --fractions) need "$@"; fractions=$2; shift 2 ;;
    --stfpm) need "$@"; stfpm=$(abs "$2"); shift 2 ;;
    --table) table_only=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "$me: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$epochs" in '' | *[!0-9]* | 0) die "--epochs $epochs: expected a whole number >= 1" ;; esac
IFS=',' read -r -a sections <<< "$only"
for s in "${sections[@]}"; do
  case "$s" in table3 | table5 | ckpt | seeds) ;; *) die "--only: unknown section '$s' (table3, table5, ckpt, seeds)" ;; esac
done
want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
IFS=',' read -r -a seed_list <<< "$seeds"
for s in "${seed_list[@]}"; do case "$s" in '' | *[!0-9]*) die "--seeds: '$s' is not a seed (whole number)" ;; esac; done
IFS=',' read -r -a frac_list <<< "$fractions"
for f in "${frac_list[@]}"; do
  awk -v f="$f" 'BEGIN { exit !(f ~ /^[0-9.]+$/ && f > 0 && f <= 1) }' || die "--fractions: '$f' is not in (0, 1]"
done

# --- inputs ----------------------------------------------------------------------------------
[ -d "$data" ] || die "$data: no such folder (an MVTec AD category; data/fetch_mvtec.sh fetches MVTec AD)"
if [ ! -d "$data/train/good" ] || [ ! -d "$data/test" ]; then
  die "$data: not an MVTec AD category (no train/good or no test/)"
fi
if [ "$table_only" = 0 ]; then
  if [ -z "$teacher" ] && [ -n "${STFPM_TEACHER:-}" ]; then teacher=$(abs "$STFPM_TEACHER"); fi
  if [ -z "$teacher" ]; then
    for f in "${TORCH_HOME:-$HOME/.cache/torch}"/hub/checkpoints/resnet18-*.pth; do
      [ -f "$f" ] && { teacher=$f; break; }
    done
  fi
  [ -n "$teacher" ] || die "no teacher: pass --teacher FILE or set STFPM_TEACHER (an ImageNet ResNet-18; data/fetch_weights.sh downloads torchvision's)"
  [ -f "$teacher" ] || die "teacher $teacher: no such file"
  if [ -z "$stfpm" ]; then
    stfpm="$here/build/stfpm"
    (cd "$here" && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null &&
      cmake --build build -j"$(nproc)" --target stfpm_cli >/dev/null) || die "building build/stfpm failed"
  fi
  if [ ! -f "$stfpm" ] || [ ! -x "$stfpm" ]; then die "$stfpm: no such program (build it, or pass --stfpm BIN)"; fi
fi
mkdir -p "$out"

# --- runs ------------------------------------------------------------------------------------
# A run is named by its configuration: L<levels>_F<fraction>_<rule>_S<seed>.
run_name() { printf 'L%s_F%s_%s_S%s\n' "${1//,/}" "$2" "$3" "$4"; }
# The metadata value KEY of a safetensors file (its JSON header), empty when absent.
st_meta() {
  local n
  n=$(head -c 8 "$1" | od -An -t u8 | tr -d ' \n')
  [ -n "$n" ] || return 0
  head -c "$((8 + n))" "$1" | tail -c "$n" | grep -o "\"$2\": *\"[^\"]*\"" | head -1 | sed 's/.*: *"\(.*\)"/\1/' || true
}
epochs_done() { if [ -f "$1/run/last.safetensors" ]; then st_meta "$1/run/last.safetensors" epoch; fi; }
# What a run's numbers depend on besides its row's options and the epoch count.
inputs_line() { printf 'data=%s teacher=%s train-options=%s\n' "$data" "$teacher" "${extra[*]:-}"; }
is_done() {   # run dir: trained N epochs and tested after that
  local d=$1
  [ -f "$d/metrics.json" ] && [ "$(epochs_done "$d")" = "$epochs" ] && [ "$d/metrics.json" -nt "$d/run/last.safetensors" ]
}

declare -A status=() why=()   # run name -> ok | failed | nolayer4; why it failed
failed() { status[$1]=failed; why[$1]=$2; log "$1: $2"; }
run_one() {   # name layers fraction rule seed
  local name=$1 layers=$2 frac=$3 rule=$4 seed=$5 d="$out/$1"
  [ -n "${status[$name]:-}" ] && return 0
  if [ -f "$d/inputs.txt" ] && [ "$(cat "$d/inputs.txt")" != "$(inputs_line)" ]; then
    failed "$name" "$d was made with other inputs ($(cat "$d/inputs.txt")): delete it or choose another OUT"
    return 0
  fi
  if is_done "$d"; then log "$name: done before ($epochs epochs, $d/metrics.json)"; status[$name]=ok; return 0; fi
  mkdir -p "$d"
  inputs_line > "$d/inputs.txt"
  local have
  have=$(epochs_done "$d"); have=${have:-0}
  if [ "$have" -gt "$epochs" ]; then
    failed "$name" "$d is trained for $have epochs, more than --epochs $epochs: pass --epochs $have or delete it"
    return 0
  fi
  local t0 t1 t2 resume=()
  t0=$(date +%s)
  if [ "$have" -lt "$epochs" ]; then
    [ "$have" -gt 0 ] && resume=(--resume)
    log "$name: training (--layers $layers --train-fraction $frac --checkpoint-by $rule --seed $seed," \
        "epochs $((have + 1))-$epochs${resume:+, resumed})"
    if ! "$stfpm" train --data "$data" --out "$d/run" --teacher "$teacher" --epochs "$epochs" "${extra[@]}" \
         --layers "$layers" --train-fraction "$frac" --checkpoint-by "$rule" --seed "$seed" "${resume[@]}" \
         </dev/null >>"$d/train.log" 2>&1; then
      if grep -q "has no layer4 weights" "$d/train.log"; then
        status[$name]=nolayer4; rm -rf "$d"; return 0
      fi
      failed "$name" "training FAILED ($d/train.log): $(tr '\r' '\n' < "$d/train.log" | tail -1)"; return 0
    fi
  fi
  t1=$(date +%s)
  log "$name: testing"
  if ! "$stfpm" test --data "$data" --model "$d/run" --json "$d/metrics.json.tmp" </dev/null >"$d/test.log" 2>&1; then
    rm -f "$d/metrics.json.tmp"; failed "$name" "test FAILED ($d/test.log): $(tail -1 "$d/test.log")"; return 0
  fi
  mv "$d/metrics.json.tmp" "$d/metrics.json"
  t2=$(date +%s)
  printf '%s\tepochs %s-%s\ttrain %s s\ttest %s s\tload %s\n' "$(date -u +%FT%TZ)" "$((have + 1))" "$epochs" \
    "$((t1 - t0))" "$((t2 - t1))" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')" >> "$d/times.tsv"
  status[$name]=ok
}

# Whether the teacher has layer4: the program's own check, on two of the training images at
# 32 x 32 (it refuses a level-4 run of a conv1-layer3 file before training).
probe_layer4() {
  local p imgs=() f
  p=$(mktemp -d "${TMPDIR:-/tmp}/ablations_probe_XXXXXX")
  for f in "$data"/train/good/*; do
    [ -f "$f" ] || continue
    imgs+=("$f"); [ ${#imgs[@]} -ge 2 ] && break
  done
  mkdir -p "$p/images"
  for f in "${imgs[@]}"; do ln -s "$f" "$p/images/"; done
  local rc=0
  "$stfpm" train --data "$p/images" --out "$p/run" --teacher "$teacher" "${extra[@]}" --epochs 1 --size 32 --batch 2 \
    --val-split 0 --layers 4 --train-fraction 1 --seed 0 </dev/null >"$p/log" 2>&1 || rc=1
  if [ "$rc" = 0 ]; then echo yes
  elif grep -q "has no layer4 weights" "$p/log"; then echo no
  else echo "error: $(tail -1 "$p/log")"
  fi
  rm -rf "$p"
}

# The rows of each section: label | layers | fraction | rule | seed
rows_table3() { for l in 1 2 3 4 1,2 2,3 1,2,3 1,2,3,4; do echo "$l|$l|1|loss|0"; done; }
rows_table5() { for f in "${frac_list[@]}" 1; do echo "$f|1,2,3|$f|loss|0"; done; }
rows_ckpt() { echo "loss|1,2,3|1|loss|0"; echo "map|1,2,3|1|map|0"; }
rows_seeds() { for s in "${seed_list[@]}"; do echo "$s|1,2,3|1|loss|$s"; done; }
rows() { case "$1" in table3) rows_table3 ;; table5) rows_table5 ;; ckpt) rows_ckpt ;; seeds) rows_seeds ;; esac; }

has_l4=unknown   # the teacher's layer4: yes, no, or unknown (--table: what the last run found)
[ -f "$out/teacher_layer4.txt" ] && has_l4=$(cut -d' ' -f1 "$out/teacher_layer4.txt")
if [ "$table_only" = 0 ]; then
  if want table3; then
    has_l4=$(probe_layer4)
    case "$has_l4" in
      yes) log "the teacher has layer4: the level-4 rows are trained" ;;
      no) log "the teacher has no layer4 ($teacher): the level-4 rows need a full teacher" ;;
      *) die "checking the teacher for layer4: $has_l4" ;;
    esac
    echo "$has_l4 $teacher" > "$out/teacher_layer4.txt"
  fi
  for sec in table3 table5 ckpt seeds; do
    want "$sec" || continue
    while IFS='|' read -r _ layers frac rule seed; do
      case "$layers" in *4*) [ "$has_l4" = yes ] || continue ;; esac
      run_one "$(run_name "$layers" "$frac" "$rule" "$seed")" "$layers" "$frac" "$rule" "$seed"
    done < <(rows "$sec")
  done
fi

# --- tables ----------------------------------------------------------------------------------
# The paper's numbers, means over the 15 MVTec AD categories (docs/SPEC.md section 8):
# "image pixel PRO", n/a where the paper gives none. The paper's levels conv2_x..conv5_x are
# layer1..layer4 here.
paper_levels() {
  case "$1" in
    1) echo "conv2_x|0.808 n/a n/a" ;;
    2) echo "conv3_x|0.917 n/a n/a" ;;
    3) echo "conv4_x|0.934 n/a n/a" ;;
    4) echo "conv5_x|0.819 n/a n/a" ;;
    1,2) echo "conv2_x + conv3_x|0.849 n/a n/a" ;;
    2,3) echo "conv3_x + conv4_x|n/a n/a n/a" ;;
    1,2,3) echo "conv2_x - conv4_x|0.955 0.970 0.921" ;;
    1,2,3,4) echo "conv2_x - conv5_x|0.949 n/a n/a" ;;
  esac
}
paper_fraction() {
  case "$1" in
    0.05) echo "0.871 0.961 0.892" ;;
    0.1 | 0.10) echo "0.907 0.967 0.913" ;;
    1) echo "0.955 0.970 0.921" ;;
    *) echo "n/a n/a n/a" ;;
  esac
}
num() {   # json key -> value with 4 decimals, NaN for null
  local v
  v=$(sed -n "s/.*\"$2\": *\([-0-9.eE][-0-9.eE]*\|null\).*/\1/p" "$1" | head -1)
  case "$v" in '') echo "?" ;; null) echo "NaN" ;; *) awk -v x="$v" 'BEGIN { printf "%.4f", x }' ;; esac
}
best_epoch() { if [ -f "$1/run/best.safetensors" ]; then st_meta "$1/run/best.safetensors" epoch; fi; }
# A run's cells: "= image pixel aupro pro best-epoch" when it has metrics, else why not.
row_cells() {
  local d="$out/$1"
  case "${status[$1]:-}" in
    nolayer4) echo "needs a full teacher"; return ;;
    failed) echo "${why[$1]}"; return ;;
  esac
  if is_done "$d"; then
    local m="$d/metrics.json" be
    be=$(best_epoch "$d")
    echo "= $(num "$m" image_auroc) $(num "$m" pixel_auroc) $(num "$m" aupro) $(num "$m" pro_paper) ${be:-?}"
  elif [ -d "$d/run" ]; then echo "not finished ($(epochs_done "$d") of $epochs epochs trained, or not tested)"
  else echo "not run"
  fi
}
print_row() {   # label second-column "paper-image paper-pixel paper-pro" cells
  local pi pp pr ia pa au po be
  read -r pi pp pr <<< "$3"
  case "$4" in
    "= "*) read -r _ ia pa au po be <<< "$4"
           printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$ia" "$pi" "$pa" "$pp" "$au" "$po" "$pr" "$be" ;;
    *) printf '| %s | %s | %s | %s | | %s | | | %s | |\n' "$1" "$2" "$4" "$pi" "$pp" "$pr" ;;
  esac
}
header() {   # first-column title, second-column title
  echo "| $1 | $2 | image AUROC | paper (MVTec mean) | pixel AUROC | paper (MVTec mean) | AU-PRO | PRO (paper protocol) | paper (MVTec mean) | best epoch |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
}
cat_name=$(basename "$data")
echo "Ablations on $cat_name, epochs per run: $epochs${extra[*]:+, train options: ${extra[*]}}; runs in $out_shown."
echo "Ours: this category; paper: STFPM ResNet-18 256 x 256, mean over the 15 MVTec AD categories (docs/SPEC.md section 8), n/a where the paper gives no number."
[ "$cat_name" = bottle ] && echo "The paper's bottle row (Table 1, full recipe): pixel AUROC 0.988, PRO 0.951."
if want table3; then
  printf '\n### Table 3: pyramid levels\n\n'
  header "--layers" "paper's levels"
  while IFS='|' read -r label layers frac rule seed; do
    pl=$(paper_levels "$layers")
    name=$(run_name "$layers" "$frac" "$rule" "$seed")
    if [[ "$layers" == *4* ]] && [ "$has_l4" = no ]; then status[$name]=nolayer4; fi
    print_row "$label" "${pl%%|*}" "${pl#*|}" "$(row_cells "$name")"
  done < <(rows_table3)
fi
if want table5; then
  printf '\n### Table 5: few-shot training fractions (layers 1,2,3)\n\n'
  header "--train-fraction" "training images"
  n_all=$(find "$data/train/good" -maxdepth 1 -type f | wc -l)
  while IFS='|' read -r label layers frac rule seed; do
    name=$(run_name "$layers" "$frac" "$rule" "$seed")
    # what the run's log says, else the split of docs/SPEC.md section 4 (floor(0.2 n) held out)
    k=$(sed -n 's/^loading \([0-9]*\) training.*/\1/p' "$out/$name/train.log" 2>/dev/null | head -1)
    [ -n "$k" ] || k=$(awk -v n="$n_all" -v f="$frac" 'BEGIN { t = n - int(n * 0.2); k = int(t * f + 0.5); if (k < 1) k = 1; print k }')
    print_row "$label" "$k" "$(paper_fraction "$frac")" "$(row_cells "$name")"
  done < <(rows_table5)
fi
if want ckpt; then
  printf '\n### Checkpoint rule (layers 1,2,3)\n\n'
  header "--checkpoint-by" "rule"
  print_row loss "lowest validation loss (the paper's)" "0.955 0.970 0.921" "$(row_cells "$(run_name 1,2,3 1 loss 0)")"
  print_row map "lowest mean validation map (authors' code)" "n/a n/a n/a" "$(row_cells "$(run_name 1,2,3 1 map 0)")"
  echo
  echo "(The paper's column of the loss row is its main result, Table 1, with the rule the paper states; it has no number for the other rule.)"
fi
if want seeds; then
  printf '\n### Seed spread (the default recipe: layers 1,2,3, whole training set, checkpoint by loss)\n\n'
  echo "| --seed | image AUROC | pixel AUROC | AU-PRO | PRO (paper protocol) | best epoch |"
  echo "|---|---|---|---|---|---|"
  vals=()
  for s in "${seed_list[@]}"; do
    c=$(row_cells "$(run_name 1,2,3 1 loss "$s")")
    case "$c" in
      "= "*) read -r _ ia pa au po be <<< "$c"
             echo "| $s | $ia | $pa | $au | $po | $be |"
             vals+=("$ia $pa $au $po") ;;
      *) echo "| $s | $c | | | | |" ;;
    esac
  done
  if [ ${#vals[@]} -ge 2 ]; then
    printf '%s\n' "${vals[@]}" | awk -v k="${#vals[@]}" '
      { for (j = 1; j <= 4; j++) {   # a NaN metric (a run without one) makes its column NaN
          if ($j !~ /^[-0-9.]+$/) { bad[j] = 1; continue }
          x[NR, j] = $j + 0; s[j] += $j; if (NR == 1 || $j + 0 > hi[j]) hi[j] = $j + 0; if (NR == 1 || $j + 0 < lo[j]) lo[j] = $j + 0 } }
      END {
        printf "| max - min (%d seeds) |", k
        for (j = 1; j <= 4; j++) if (bad[j]) printf " NaN |"; else printf " %.4f |", hi[j] - lo[j]
        printf " |\n| mean ± sd |"
        for (j = 1; j <= 4; j++) {
          if (bad[j]) { printf " NaN |"; continue }
          m = s[j] / k; v = 0
          for (i = 1; i <= k; i++) v += (x[i, j] - m) ^ 2
          printf " %.4f ± %.4f |", m, sqrt(v / (k - 1))
        }
        printf " |\n"
      }'
    echo
    echo "(sd: sample standard deviation, n - 1.)"
  fi
fi
fail=0
for n in "${!status[@]}"; do [ "${status[$n]}" = failed ] && fail=1; done
exit $fail
