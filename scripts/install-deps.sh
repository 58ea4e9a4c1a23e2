#!/bin/bash
# Installs the Debian/Ubuntu packages stfpm-cl needs to build and test (run as root or with sudo).
set -euo pipefail
PKGS="build-essential cmake pkg-config ocl-icd-opencl-dev libclblast-dev check libsubunit-dev libstb-dev pocl-opencl-icd clinfo libopenblas-dev oclgrind"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
# Optional: clang with the libFuzzer runtime for the fuzz harnesses (skipped when unavailable).
if ! dpkg -s clang >/dev/null 2>&1 || ! dpkg -s libclang-rt-dev >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-dev \
    || echo "install-deps: clang/libFuzzer not installed; the fuzz step of scripts/test.sh will be skipped"
fi
