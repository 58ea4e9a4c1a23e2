#!/bin/bash
# Creates the Python virtual environment for the benchmarks' PyTorch, ONNX Runtime and OpenVINO
# sides (bench/compare.py, bench/reference/*.py) and for the reference generators tests/ref/*.py,
# with the pinned packages of bench/requirements.txt. Building and testing stfpm-cl never need it.
#
#   bench/setup_env.sh [--dir DIR] [--python PYTHON] [--torch-index URL]
#
#   --dir DIR          where to create the environment (default: .venv-bench at the
#                      repository root); an existing environment there is reused and updated
#   --python PYTHON    the interpreter that creates it (default: python3)
#   --torch-index URL  install torch and torchvision from this package index first, e.g.
#                      https://download.pytorch.org/whl/cpu for CPU-only wheels without
#                      the CUDA libraries that PyPI's Linux x86_64 torch depends on
#
# Then, from the repository root:
#   .venv-bench/bin/python bench/compare.py --rounds 1 --steps 1
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/.venv-bench"
python="python3"
torch_index=""
usage() { sed -n '2,16s/^# \{0,1\}//p' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || { echo "setup_env: --dir needs a value" >&2; exit 2; }; dir="$2"; shift 2 ;;
    --python) [ $# -ge 2 ] || { echo "setup_env: --python needs a value" >&2; exit 2; }; python="$2"; shift 2 ;;
    --torch-index) [ $# -ge 2 ] || { echo "setup_env: --torch-index needs a value" >&2; exit 2; }; torch_index="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup_env: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
req="$root/bench/requirements.txt"
command -v "$python" >/dev/null 2>&1 || { echo "setup_env: $python not found (--python PYTHON)" >&2; exit 1; }
if [ ! -x "$dir/bin/python" ]; then
  echo "setup_env: creating $dir with $("$python" --version 2>&1)"
  "$python" -m venv "$dir" || {
    echo "setup_env: '$python -m venv' failed (on Debian / Ubuntu: apt-get install python3-venv)" >&2; exit 1; }
fi
pip=("$dir/bin/python" -m pip --disable-pip-version-check)
if [ -n "$torch_index" ]; then
  pins=$(grep -E '^(torch|torchvision)==' "$req" | tr '\n' ' ')
  echo "setup_env: installing $pins from $torch_index"
  # shellcheck disable=SC2086
  "${pip[@]}" install --index-url "$torch_index" $pins
fi
echo "setup_env: installing $req"
"${pip[@]}" install -r "$req"
"$dir/bin/python" -c 'import torch, torchvision; print("setup_env: torch", torch.__version__, "torchvision", torchvision.__version__)'
"$dir/bin/python" -c 'import onnx, onnxruntime, openvino; print("setup_env: onnx", onnx.__version__, "onnxruntime", onnxruntime.__version__, "openvino", openvino.get_version())'
echo "setup_env: ready. From the repository root, for example:"
echo "  $dir/bin/python bench/compare.py --rounds 1 --steps 1"
