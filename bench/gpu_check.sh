#!/bin/bash
# One command for whoever has a GPU: sets up OpenCL and CLBlast if needed, builds, and prints
# one table with everything this project measures about a device.
#
#   bench/gpu_check.sh [--device SEL] [--debs DIR] [--size S] [--batch N] [--quick] [--strict]
#
#   --device SEL  OpenCL device (index or name substring; default: the first GPU, else the first device)
#   --debs DIR    a folder of Debian packages (scripts/fetch-debs.sh downloads them on a machine
#                 with network) to unpack and use on a machine that has the GPU driver but no
#                 OpenCL ICD loader, CLBlast or Check and no network
#   --size S, --batch N   the training / inference shape (default 256 and 32: the paper's recipe)
#   --quick       smaller measurements (size 128, batch 8) and only the op tests: a check of the
#                 script itself on a CPU device
#   --strict      also fail when a GPU target below is missed
#
# The table: the device (driver, compute units, memory, alignment, kernel variant, CLBlast
# parameter source); pass / fail of the op and parity tests on that device; a per-kernel
# profile of one training step (ms, calls, share, GFLOP/s of the GEMMs); training and inference
# images/s at the batch, batch-1 latency, peak device memory; and, when a Python with torch and
# CUDA is found (.venv-bench, bench/setup_env.sh, or --python), the same rows for PyTorch on
# CUDA side by side (bench/compare.py --torch-device cuda).
# Targets on a data-centre GPU (H100 / H200 class): training at least 1.0x PyTorch CUDA fp32,
# inference at least 1000 images/s at 256 x 256, no non-GEMM kernel above 15 % of a training step.
# Exit status: non-zero when a test fails or a measurement cannot be made (with --strict, also
# when a target is missed).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
device="" debs="" size=256 batch=32 quick=0 strict=0 python=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --debs) debs="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --quick) quick=1; size=128; batch=8; shift ;;
    --strict) strict=1; shift ;;
    --python) python="$2"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
fail=0
note() { echo "gpu_check: $*" >&2; }

# --- 1. OpenCL, CLBlast, Check --------------------------------------------------------------
if [ -n "$debs" ]; then
  [ -d "$debs" ] || { note "--debs $debs: no such folder"; exit 1; }
  ocl_root="${OCL_ROOT:-$(mktemp -d)}"
  for f in "$debs"/*.deb; do dpkg -x "$f" "$ocl_root" || { note "cannot unpack $f"; exit 1; }; done
  lib="$ocl_root/usr/lib/x86_64-linux-gnu"
  export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}" PATH="$ocl_root/usr/bin:$PATH"
  export CPATH="$ocl_root/usr/include:$ocl_root/usr/include/stb:${CPATH:-}" LIBRARY_PATH="$lib:${LIBRARY_PATH:-}"
  export PKG_CONFIG_LIBDIR="$lib/pkgconfig:$ocl_root/usr/share/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$ocl_root"
  mkdir -p "$ocl_root/vendors"
  cp /etc/OpenCL/vendors/*.icd "$ocl_root/vendors/" 2>/dev/null || true
  export OCL_ICD_VENDORS="$ocl_root/vendors"
  note "packages from $debs unpacked under $ocl_root"
elif ! pkg-config --exists OpenCL clblast check 2>/dev/null; then
  if [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; then
    bash scripts/install-deps.sh || { note "installing the packages failed: on a machine without network, use --debs"; exit 1; }
  else
    note "OpenCL / CLBlast / Check development packages missing and no root: use --debs DIR"; exit 1
  fi
fi
# The NVIDIA driver's OpenCL library, registered for the ICD loader when no .icd names it.
nv=$(ls /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 /usr/local/nvidia/lib64/libnvidia-opencl.so.1 \
        /usr/local/nvidia/lib/libnvidia-opencl.so.1 2>/dev/null | head -1)
vendors="${OCL_ICD_VENDORS:-/etc/OpenCL/vendors}"
if [ -n "$nv" ] && ! grep -qs nvidia "$vendors"/*.icd 2>/dev/null; then
  vdir="${OCL_ICD_VENDORS:-$(mktemp -d)}"
  mkdir -p "$vdir"
  cp "$vendors"/*.icd "$vdir/" 2>/dev/null || true
  echo "$nv" > "$vdir/nvidia.icd"
  export OCL_ICD_VENDORS="$vdir"
  note "NVIDIA OpenCL library registered: $nv"
fi

# --- 2. build ---------------------------------------------------------------------------------
build="$root/build-gpucheck"
export STFPM_CACHE_DIR="${STFPM_CACHE_DIR:-$build/kernel-cache}"
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build "$build" -j"$(nproc)" >/dev/null; }; then
  note "the build failed"; cmake --build "$build" 2>&1 | tail -30; exit 1
fi
[ -n "$device" ] && export STFPM_DEVICE="$device"
dev_args=()
[ -n "$device" ] && dev_args=(--device "$device")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# --- 3. the device ------------------------------------------------------------------------------
if ! "$build/bench_info" "${dev_args[@]}" >"$out/info.txt" 2>"$out/info.err"; then
  cat "$out/info.err" >&2; exit 1
fi

# --- 4. tests on the device -----------------------------------------------------------------------
labels="ops|parity"
[ "$quick" = 1 ] && labels="ops"
(cd "$build" && ctest -L "$labels" -E "_gpu$|_gemmk0$" --timeout 1800 >"$out/ctest.txt" 2>&1)
tests_rc=$?
tests_line=$(grep -E "tests passed" "$out/ctest.txt" | tail -1)
failed=$(grep -E "\(Failed\)|\(Timeout\)|\(SEGFAULT\)|Exception" "$out/ctest.txt" | sed 's/^[[:space:]]*//' | tr '\n' ' ')
[ "$tests_rc" = 0 ] || fail=1

# --- 5. profile of one training step, throughput, latency, memory --------------------------------
steps=1
"$build/bench_step" --size "$size" --batch "$batch" --steps "$steps" >"$out/profile.txt" 2>"$out/profile.err" \
  || { note "bench_step failed: $(tail -3 "$out/profile.err")"; fail=1; }
tb_args=(--size "$size" --batch "$batch" --infer-batch "$batch" --train-steps 3 --infer-batches 3 --latency-reps 21)
[ "$quick" = 1 ] && tb_args=(--size "$size" --batch "$batch" --infer-batch "$batch" --train-steps 1 --infer-batches 1 --latency-reps 5)
"$build/bench_throughput" "${tb_args[@]}" "${dev_args[@]}" >"$out/tp.json" 2>"$out/tp.err" \
  || { note "bench_throughput failed: $(tail -3 "$out/tp.err")"; fail=1; }
jget() { python3 -c "import json,sys; d=json.load(open('$out/tp.json')); v=d.get('$1'); print('%.1f' % v if isinstance(v,(int,float)) else '-')" 2>/dev/null || echo "-"; }

# --- 6. PyTorch on CUDA, when present ------------------------------------------------------------
[ -z "$python" ] && [ -x "$root/.venv-bench/bin/python" ] && python="$root/.venv-bench/bin/python"
torch_rows=""
if [ -n "$python" ] && "$python" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  if "$python" bench/compare.py --torch-device cuda --size "$size" --batch "$batch" --infer-batch "$batch" --rounds 1 \
       --build-dir "$build" "${dev_args[@]}" >"$out/compare.txt" 2>&1; then
    torch_rows=$(cat "$out/compare.txt")
  else
    note "bench/compare.py failed: $(tail -5 "$out/compare.txt")"; fail=1
  fi
fi

# --- the table ----------------------------------------------------------------------------------
echo "== device"
sed 's/^/  /' "$out/info.txt"
echo "== tests on this device (labels $labels)"
echo "  ${tests_line:-no summary: see below}"
[ -n "$failed" ] && echo "  failed: $failed"
[ "$tests_rc" = 0 ] || tail -20 "$out/ctest.txt" | sed 's/^/  | /'
echo "== one training step, size $size, batch $batch (profiled)"
sed 's/^/  /' "$out/profile.txt"
echo "== throughput (bench_throughput ${tb_args[*]})"
echo "  training images/s (teacher cache):    $(jget train_cached_images_per_s)"
echo "  training images/s (teacher forward):  $(jget train_uncached_images_per_s)"
echo "  inference images/s at batch $batch:       $(jget infer_images_per_s)"
echo "  batch-1 latency ms (median):          $(jget latency_ms_median)"
echo "  peak device memory MiB (train/infer): $(jget peak_device_train_mib) / $(jget peak_device_infer_mib)"
if [ -n "$torch_rows" ]; then
  echo "== side by side with PyTorch on CUDA (bench/compare.py --torch-device cuda)"
  echo "$torch_rows" | sed 's/^/  /'
else
  echo "== PyTorch on CUDA: not measured (no Python with torch and CUDA; bench/setup_env.sh makes one)"
fi

# --- targets (a GPU's): reported; failing only with --strict ----------------------------------------
# GEMM kernels (CLBlast's, and cl/gemm.cl's gemm_*: split-K, the CPU variant's own) do not count
# as non-GEMM kernels.
echo "== targets"
missed=0
worst=$(awk '/^kernel /{t=1; next} t && NF>=4 && $4 ~ /%$/ && $1!="clblast_sgemm" && $1 !~ /^gemm_/ {gsub("%","",$4); if ($4+0>w) {w=$4+0; n=$1}} END {printf "%s %.1f", n, w}' "$out/profile.txt")
wname=${worst% *}; wshare=${worst#* }
if awk -v s="$wshare" 'BEGIN{exit !(s <= 15)}'; then echo "  met:    no non-GEMM kernel above 15 % of a training step (largest: $wname $wshare %)"
else echo "  missed: non-GEMM kernel above 15 % of a training step: $wname $wshare %"; missed=1; fi
inf=$(jget infer_images_per_s)
if [ "$inf" != "-" ] && awk -v v="$inf" 'BEGIN{exit !(v >= 1000)}'; then echo "  met:    inference >= 1000 images/s ($inf)"
else echo "  missed: inference >= 1000 images/s ($inf; size $size)"; missed=1; fi
if [ -n "$torch_rows" ]; then
  echo "  training vs PyTorch CUDA: see the ratios above (target >= 1.0x)"
else
  echo "  training vs PyTorch CUDA: not measured"
fi
[ "$strict" = 1 ] && [ "$missed" = 1 ] && fail=1
if [ "$fail" = 0 ]; then echo "gpu_check: all checks passed"; else echo "gpu_check: FAILED"; fi
exit "$fail"
