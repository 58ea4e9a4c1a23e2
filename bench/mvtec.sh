#!/bin/bash
# The paper's Table 1 for every MVTec AD category found under ROOT: trains and tests each one,
# one job per device in parallel, and prints per category image AUROC, pixel AUROC, AU-PRO and
# the paper-protocol PRO with the paper's values beside ours, and the means.
#
#   bench/mvtec.sh ROOT [--devices LIST] [--epochs N] [--out DIR] [--teacher FILE] [--only CATEGORY]
#                  [--table] [--stfpm BIN] [-- TRAIN_OPTIONS...]
#
#   ROOT            an MVTec AD root (data/fetch_mvtec.sh puts it in data/mvtec_ad): every folder
#                   with train/good and test/ is a category
#   --devices LIST  comma-separated OpenCL device selectors (`stfpm devices`), one job per device
#                   at a time; default: the default device (one job)
#   --epochs N      training epochs (default 100, the paper's; say so when reporting fewer)
#   --out DIR       runs/mvtec (DIR/<category>/: the run, metrics.json, train.log, test.log)
#   --teacher FILE  the ImageNet ResNet-18 (default: found as `stfpm train` finds it)
#   --only CATEGORY run that category only (one job of a cluster's job array, see bench/README.md)
#   --table         run nothing: print the table of what DIR holds (after a job array)
#   --stfpm BIN     the program to run (default: build/stfpm, built first)
#   after --, options for `stfpm train` (e.g. --size 256 --batch 32, the defaults)
# A category whose DIR/<category>/metrics.json exists is not run again (delete it to redo);
# an interrupted training run resumes from its last checkpoint.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }   # paths as the caller gave them
[ $# -ge 1 ] || { sed -n '2,23p' "$0"; exit 2; }
root=$(abs "$1"); shift
devices="" epochs=100 out="$here/runs/mvtec" teacher=() extra=() only="" table_only=0 stfpm=""
while [ $# -gt 0 ]; do
  case "$1" in
    --devices) devices="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --out) out=$(abs "$2"); shift 2 ;;
    --teacher) teacher=(--teacher "$(abs "$2")"); shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --table) table_only=1; shift ;;
    --stfpm) stfpm=$(abs "$2"); shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "mvtec.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
out=$(abs "$out")
cd "$here"
[ -d "$root" ] || { echo "mvtec.sh: $root: no such folder (data/fetch_mvtec.sh fetches MVTec AD)" >&2; exit 1; }
cats=()
for d in "$root"/*/; do
  d=${d%/}
  [ -d "$d/train/good" ] && [ -d "$d/test" ] && cats+=("$(basename "$d")")
done
[ ${#cats[@]} -gt 0 ] || { echo "mvtec.sh: no category (a folder with train/good and test/) under $root" >&2; exit 1; }
if [ -n "$only" ]; then
  [ -d "$root/$only/train/good" ] || { echo "mvtec.sh: --only $only: no such category under $root" >&2; exit 1; }
  cats=("$only")
fi
if [ -z "$stfpm" ] && [ -n "$only" ] && [ -x build/stfpm ]; then
  stfpm="$here/build/stfpm"   # a job of an array: never rebuild a tree the other jobs run from
fi
if [ -z "$stfpm" ] && [ "$table_only" = 0 ]; then
  stfpm="$here/build/stfpm"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j"$(nproc)" --target stfpm_cli >/dev/null \
    || { echo "mvtec.sh: the build failed" >&2; exit 1; }
fi
IFS=',' read -r -a devs <<< "${devices:-}"
[ ${#devs[@]} -gt 0 ] || devs=("")
mkdir -p "$out"

# one worker per device; worker w takes categories w, w + n, w + 2n, ...
run_category() {   # category device
  local c=$1 dev=$2 dir="$out/$1" dargs=()
  [ -n "$dev" ] && dargs=(--device "$dev")
  [ -f "$dir/metrics.json" ] && { echo "mvtec.sh: $c: done before ($dir/metrics.json)"; return 0; }
  mkdir -p "$dir"
  local resume=()
  [ -f "$dir/run/last.safetensors" ] && resume=(--resume)
  echo "mvtec.sh: $c: training on ${dev:-the default device} ($epochs epochs)"
  if ! "$stfpm" train --data "$root/$c" --out "$dir/run" --epochs "$epochs" "${teacher[@]}" "${dargs[@]}" \
       "${resume[@]}" "${extra[@]}" >"$dir/train.log" 2>&1; then
    echo "mvtec.sh: $c: training FAILED: $(tail -1 "$dir/train.log")"; return 1
  fi
  if ! "$stfpm" test --data "$root/$c" --model "$dir/run" --json "$dir/metrics.json.tmp" "${dargs[@]}" \
       >"$dir/test.log" 2>&1; then
    echo "mvtec.sh: $c: test FAILED: $(tail -1 "$dir/test.log")"; rm -f "$dir/metrics.json.tmp"; return 1
  fi
  mv "$dir/metrics.json.tmp" "$dir/metrics.json"
  echo "mvtec.sh: $c: $(tr -d '\n ' < "$dir/metrics.json" | cut -c1-120)"
}
pids=()
n=${#devs[@]}
[ "$table_only" = 1 ] && n=0
for w in $(seq 0 $((n - 1))); do
  (
    rc=0
    for i in $(seq "$w" "$n" $((${#cats[@]} - 1))); do run_category "${cats[$i]}" "${devs[$w]}" || rc=1; done
    exit $rc
  ) &
  pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done

# The paper's values (STFPM, ResNet-18, 256 x 256; docs/SPEC.md section 8): the per-category
# table of the paper is known here for bottle only; "-" where unknown. AU-PRO is not in the paper.
paper() {   # category -> "image pixel pro"
  case "$1" in
    bottle) echo "- 0.988 0.951" ;;
    mean) echo "0.955 0.970 0.921" ;;
    *) echo "- - -" ;;
  esac
}
num() { sed -n "s/.*\"$2\": *\([-0-9.eE]*\).*/\1/p" "$1" | head -1; }
printf '\n%-12s | %-15s | %-15s | %-7s | %-15s\n' "category" "image AUROC" "pixel AUROC" "AU-PRO" "PRO (paper's)"
printf '%-12s | %-15s | %-15s | %-7s | %-15s\n' "" "ours / paper" "ours / paper" "ours" "ours / paper"
sums="0 0 0 0"; k=0
for c in "${cats[@]}"; do
  f="$out/$c/metrics.json"
  read -r pi pp pr <<< "$(paper "$c")"
  if [ -f "$f" ]; then
    ia=$(num "$f" image_auroc); pa=$(num "$f" pixel_auroc); au=$(num "$f" aupro); po=$(num "$f" pro_paper)
    printf '%-12s | %.3f / %-7s | %.3f / %-7s | %.3f   | %.3f / %-7s\n' "$c" "$ia" "$pi" "$pa" "$pp" "$au" "$po" "$pr"
    sums=$(awk -v s="$sums" -v a="$ia" -v b="$pa" -v c="$au" -v d="$po" 'BEGIN{split(s,x," "); print x[1]+a, x[2]+b, x[3]+c, x[4]+d}')
    k=$((k + 1))
  else
    printf '%-12s | %-15s | %-15s | %-7s | %-15s\n' "$c" "failed" "" "" ""
  fi
done
read -r pi pp pr <<< "$(paper mean)"
if [ "$k" -gt 0 ]; then
  read -r m1 m2 m3 m4 <<< "$(awk -v s="$sums" -v k="$k" 'BEGIN{split(s,x," "); printf "%.3f %.3f %.3f %.3f", x[1]/k, x[2]/k, x[3]/k, x[4]/k}')"
  printf '%-12s | %s / %-7s | %s / %-7s | %s   | %s / %-7s\n' "mean ($k)" "$m1" "$pi" "$m2" "$pp" "$m3" "$m4" "$pr"
fi
echo "(paper: STFPM, ResNet-18, 256 x 256, mean over all 15 categories; ours: $epochs epochs; runs in $out)"
exit $fail
