#!/bin/bash
# The one command that sets up and runs the main job on the built-in demo data:
# installs packages, builds, finds (or downloads) the ImageNet ResNet-18 teacher, and runs
# `stfpm demo` (generate data, train, test, write heatmaps). Extra arguments go to `stfpm demo`
# (e.g. --out DIR, --epochs N, --size S, --device SEL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target stfpm_cli
if [ -z "${STFPM_TEACHER:-}" ]; then
  hub="${TORCH_HOME:-$HOME/.cache/torch}/hub/checkpoints"
  if ! ls "$hub"/resnet18-*.pth >/dev/null 2>&1; then   # else stfpm finds it there by itself
    echo "demo: fetching torchvision's ResNet-18 weights (46 MB) into $hub"
    sh data/fetch_weights.sh
  fi
fi
exec ./build/stfpm demo "$@"
