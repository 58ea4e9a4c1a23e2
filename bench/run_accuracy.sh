#!/bin/bash
# Accuracy benchmark: the paper's recipe on one MVTec AD category, then the metrics.
#   bench/run_accuracy.sh [CATEGORY_DIR] [OUT_DIR] [extra `stfpm train` options...]
# Defaults: data/mvtec_ad/bottle (where data/fetch_mvtec.sh puts it), runs/accuracy-<category>.
# Teacher: found the way `stfpm train` finds it ($STFPM_TEACHER, else torchvision's file in
# the torch hub cache, which data/fetch_weights.sh downloads); pass `--teacher FILE` among the
# extra options to choose one. The full recipe is 100 epochs, batch 32, 256x256; pass e.g.
# `--epochs 40` for a shorter schedule (say so when reporting the numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-data/mvtec_ad/bottle}"
cat_name="$(basename "$data")"
out="${2:-runs/accuracy-$cat_name}"
shift $(( $# > 2 ? 2 : $# ))
if [ ! -d "$data" ]; then echo "run_accuracy: $data not found (MVTec AD category; data/fetch_mvtec.sh fetches it)"; exit 1; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j"$(nproc)" --target stfpm_cli >/dev/null
resume=""; [ -f "$out/last.safetensors" ] && resume="--resume"
start=$(date +%s)
./build/stfpm train --data "$data" --out "$out" --size 256 --batch 32 $resume "$@"
mid=$(date +%s)
./build/stfpm test --data "$data" --model "$out" --json "$out/metrics.json" --csv "$out/scores.csv" | tee "$out/metrics.txt"
end=$(date +%s)
echo "device: $(./build/stfpm devices | head -1)" | tee -a "$out/metrics.txt"
echo "wall time: train $((mid - start)) s (this invocation), test $((end - mid)) s" | tee -a "$out/metrics.txt"
