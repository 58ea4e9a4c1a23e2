#!/bin/bash
# Downloads (does not install) the Debian packages stfpm-cl needs to build and run, into DIR
# (default .debs), for a GPU machine with a driver but no network: copy DIR there and run
# bench/gpu_check.sh --debs DIR (it unpacks them into a temporary folder, never into /).
set -euo pipefail
dir="${1:-.debs}"
mkdir -p "$dir"
cd "$dir"
apt-get download ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-c-headers opencl-clhpp-headers libclblast1 \
  libclblast-dev check libsubunit0 libsubunit-dev libstb0 libstb-dev clinfo
ls -1 ./*.deb
