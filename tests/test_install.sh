#!/bin/sh
# The installed stfpm-cl, as a user gets it: `cmake --install` into a temporary prefix, then
#   - the files are there (program, libstfpm.so + libstfpm.a, headers, stfpm.pc, CMake package),
#     `stfpm --version` and `pkg-config --modversion stfpm` give the project's version, and each
#     installed header compiles on its own;
#   - examples/score_image.c builds against the installed library three ways: pkg-config (shared),
#     examples/Makefile's static target (pkg-config --static) and examples/CMakeLists.txt
#     (find_package(stfpm));
#   - a model is trained with the installed `stfpm` (a random teacher and a tiny demo data set
#     written by tests/install/make_fixture.c, itself built against the installed library), and
#     each build of the example scores one image with it: the score printed is a finite number
#     equal to `stfpm predict`'s, and the heatmap files exist.
# Exit status 77 (CTest: skipped) only when pkg-config is missing.
#
# Environment (set by CTest, CMakeLists.txt): STFPM_SOURCE_DIR, STFPM_BINARY_DIR, STFPM_CMAKE,
# STFPM_CC, STFPM_EXPECT_VERSION, STFPM_SANITIZE (1: the build is instrumented, so are the
# programs built here).
set -eu

if ! command -v pkg-config >/dev/null 2>&1; then
  echo "SKIP: pkg-config is not installed (apt-get install pkg-config), so the installed stfpm.pc cannot be used"
  exit 77
fi

src=${STFPM_SOURCE_DIR:?STFPM_SOURCE_DIR is not set}
bin=${STFPM_BINARY_DIR:?STFPM_BINARY_DIR is not set}
cmake=${STFPM_CMAKE:-cmake}
cc=${STFPM_CC:-cc}
want_version=${STFPM_EXPECT_VERSION:?STFPM_EXPECT_VERSION is not set}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/stfpm_install_XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
prefix=$work/prefix
cflags="-std=c11 -O1 -Wall -Wextra -Werror"
if [ "${STFPM_SANITIZE:-0}" = 1 ]; then
  cflags="$cflags -fsanitize=address,undefined -fno-omit-frame-pointer"
fi

# --- install ----------------------------------------------------------------------------------
"$cmake" --install "$bin" --prefix "$prefix" >"$work/install.log" 2>&1 \
  || { cat "$work/install.log" >&2; fail "cmake --install $bin --prefix $prefix failed"; }
pc=$(find "$prefix" -name stfpm.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || fail "no stfpm.pc installed under $prefix"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
for f in "$prefix/bin/stfpm" "$libdir/libstfpm.a" "$libdir/libstfpm.so" "$libdir/cmake/stfpm/stfpmConfig.cmake" \
         "$libdir/cmake/stfpm/stfpmConfigVersion.cmake" "$prefix/include/stfpm/version.h" \
         "$prefix/include/stfpm/pipeline.h"; do
  [ -e "$f" ] || fail "$f was not installed"
done
ls "$libdir"/libstfpm.so.* >/dev/null 2>&1 || fail "no versioned libstfpm.so.* in $libdir"
for h in "$src"/include/stfpm/*.h; do
  [ -f "$prefix/include/stfpm/$(basename "$h")" ] || fail "header $(basename "$h") was not installed"
done

got=$("$prefix/bin/stfpm" --version) || fail "the installed stfpm --version failed"
[ "$got" = "stfpm $want_version" ] || fail "stfpm --version printed \"$got\", expected \"stfpm $want_version\""

export PKG_CONFIG_PATH="$pcdir"
got=$(pkg-config --modversion stfpm) || fail "pkg-config cannot read $pc"
[ "$got" = "$want_version" ] || fail "pkg-config --modversion stfpm: \"$got\", expected \"$want_version\""
[ "$(pkg-config --variable=prefix stfpm)" = "$prefix" ] \
  || fail "stfpm.pc's prefix is $(pkg-config --variable=prefix stfpm), not the install prefix $prefix"
pc_cflags=$(pkg-config --cflags stfpm)
pc_libs=$(pkg-config --libs stfpm)
echo "pkg-config --cflags --libs stfpm: $pc_cflags $pc_libs"

# every installed header on its own (self-contained, C11, no warnings)
for h in "$prefix"/include/stfpm/*.h; do
  printf '#include <stfpm/%s>\nint main(void) { return 0; }\n' "$(basename "$h")" >"$work/hdr.c"
  # shellcheck disable=SC2086
  "$cc" $cflags -fsyntax-only $pc_cflags "$work/hdr.c" 2>"$work/hdr.log" \
    || { cat "$work/hdr.log" >&2; fail "the installed header stfpm/$(basename "$h") does not compile on its own"; }
done

# --- build the example and the fixture writer against the installed library --------------------
cd "$work"
# shellcheck disable=SC2086
"$cc" $cflags "$src/examples/score_image.c" $pc_cflags -o score_image $pc_libs \
  || fail "examples/score_image.c does not build with pkg-config --cflags --libs stfpm"
readelf -d score_image | grep -q 'NEEDED.*libstfpm\.so' || fail "score_image (pkg-config) is not linked with libstfpm.so"

make -s -f "$src/examples/Makefile" CC="$cc" CFLAGS="$cflags" score_image_static >make.log 2>&1 \
  || { cat make.log >&2; fail "examples/Makefile score_image_static (pkg-config --static) failed"; }
if readelf -d score_image_static | grep -q 'NEEDED.*libstfpm'; then
  fail "score_image_static depends on libstfpm.so"
fi

"$cmake" -S "$src/examples" -B cmake-build -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="$cflags" -DCMAKE_BUILD_TYPE=Release >cmake.log 2>&1 \
  && "$cmake" --build cmake-build >>cmake.log 2>&1 \
  || { cat cmake.log >&2; fail "examples/CMakeLists.txt (find_package(stfpm)) did not configure or build"; }
"$cmake" -S "$src/examples" -B cmake-build-static -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="$cflags" -DCMAKE_BUILD_TYPE=Release -DSTFPM_EXAMPLE_STATIC=ON >cmake-static.log 2>&1 \
  && "$cmake" --build cmake-build-static >>cmake-static.log 2>&1 \
  || { cat cmake-static.log >&2; fail "examples/CMakeLists.txt with stfpm::stfpm_static did not configure or build"; }

# shellcheck disable=SC2086
"$cc" $cflags "$src/tests/install/make_fixture.c" $pc_cflags -o make_fixture $pc_libs \
  || fail "tests/install/make_fixture.c does not build against the installed library"

# --- a model, trained by the installed program ---------------------------------------------------
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
ldd ./score_image | grep -q "$libdir/libstfpm\.so" || fail "score_image does not load $libdir/libstfpm.so.*: $(ldd ./score_image | grep stfpm)"
./make_fixture teacher.safetensors data >fixture.log 2>&1 || { cat fixture.log >&2; fail "make_fixture failed"; }
"$prefix/bin/stfpm" train --data data --out run --teacher teacher.safetensors --size 64 --epochs 1 --batch 4 \
  >train.log 2>&1 || { cat train.log >&2; fail "the installed stfpm train failed"; }
[ -f run/best.safetensors ] || fail "stfpm train wrote no run/best.safetensors"
image=data/test/good/000.png
[ -f "$image" ] || fail "make_fixture wrote no $image"
"$prefix/bin/stfpm" predict --model run --format csv "$image" >predict.csv 2>predict.log \
  || { cat predict.log >&2; fail "the installed stfpm predict failed"; }
cli_score=$(sed -n 2p predict.csv | cut -d, -f2)

# --- each build scores the image ------------------------------------------------------------------
is_number() {
  awk -v s="$1" 'BEGIN { exit !(s ~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/) }'
}
for prog in ./score_image ./score_image_static ./cmake-build/score_image ./cmake-build-static/score_image; do
  maps=$work/maps_$(echo "$prog" | tr -c 'a-z0-9\n' '_')
  "$prog" run/best.safetensors "$image" "$maps" >out.txt 2>err.txt \
    || { cat err.txt >&2; fail "$prog run/best.safetensors $image failed"; }
  echo "--- $prog"
  cat out.txt
  [ "$(sed -n 1p out.txt)" = "stfpm-cl $want_version" ] || fail "$prog: first line \"$(sed -n 1p out.txt)\", expected the library version"
  score=$(sed -n 's/^score: //p' out.txt)
  is_number "$score" || fail "$prog printed score \"$score\", not a finite number"
  [ "$score" = "$cli_score" ] || fail "$prog: score $score, but stfpm predict gives $cli_score for the same image"
  heatmap=$(sed -n 's/^heatmap: //p' out.txt)
  raw=$(sed -n 's/^raw map: //p' out.txt)
  [ "$heatmap" = "$maps/000_overlay.png" ] || fail "$prog: heatmap \"$heatmap\", expected $maps/000_overlay.png"
  [ -s "$heatmap" ] && [ -s "$raw" ] && [ -s "$maps/scales.csv" ] || fail "$prog: heatmap files missing in $maps"
done
echo "installed stfpm-cl $want_version: files, pkg-config, find_package, example and model all work"
