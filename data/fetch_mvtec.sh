#!/usr/bin/env bash
# Download and unpack MVTec AD (Bergmann et al., CVPR 2019) for stfpm-cl.
#
#   data/fetch_mvtec.sh [options] [CATEGORY ... | all]
#
#   --url URL        archive to download (env MVTEC_URL; default below)
#   --archive FILE   use an archive you already downloaded (no download)
#   --sha256 HEX     verify the archive before unpacking (env MVTEC_SHA256)
#   --dest DIR       where the categories go (env MVTEC_DEST; default data/mvtec_ad)
#   --keep           keep the downloaded archive (default: removed after unpacking)
#   CATEGORY         one or more of the 15 categories below; default: all
#
# WHERE THE URL COMES FROM. MVTec hands out the data after you accept its licence
# (CC BY-NC-SA 4.0, non-commercial) at
#     https://www.mvtec.com/company/research/datasets/mvtec-ad
# ("Downloads"). The page links the whole data set (mvtec_anomaly_detection.tar.xz, about
# 4.9 GB) and one archive per category (e.g. bottle.tar.xz). The links are time-stamped and
# change from time to time, so the default below may have expired: copy the current link
# from that page and pass it with --url (or MVTEC_URL), or download in a browser and pass
# the file with --archive. A per-category archive works the same way (use "all" or the
# category's name).
#
# The archive's integrity is checked with sha256sum when --sha256 is given (MVTec does not
# publish checksums: record the value of a download you trust and pin it for later runs).
# Unpacking keeps the original layout: DEST/<category>/{train,test,ground_truth}, which is
# what `stfpm` reads (SPEC.md section 7).
set -euo pipefail

DEFAULT_URL="https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/download/420938113-1629952094/mvtec_anomaly_detection.tar.xz"
CATEGORIES="bottle cable capsule carpet grid hazelnut leather metal_nut pill screw tile toothbrush transistor wood zipper"

url="${MVTEC_URL:-$DEFAULT_URL}"
sha="${MVTEC_SHA256:-}"
here="$(cd "$(dirname "$0")" && pwd)"
dest="${MVTEC_DEST:-$here/mvtec_ad}"
archive=""
keep=0
cats=()

die() { echo "fetch_mvtec: $*" >&2; exit 1; }
usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --url) [ $# -ge 2 ] || die "--url needs a value"; url="$2"; shift 2 ;;
    --archive) [ $# -ge 2 ] || die "--archive needs a file"; archive="$2"; shift 2 ;;
    --sha256) [ $# -ge 2 ] || die "--sha256 needs a value"; sha="$2"; shift 2 ;;
    --dest) [ $# -ge 2 ] || die "--dest needs a folder"; dest="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) cats+=("$1"); shift ;;
  esac
done
[ ${#cats[@]} -eq 0 ] && cats=(all)
for c in "${cats[@]}"; do
  [ "$c" = all ] && continue
  case " $CATEGORIES " in *" $c "*) ;; *) die "unknown category '$c' (one of: $CATEGORIES, or all)" ;; esac
done

command -v tar >/dev/null || die "tar is required"
command -v xz >/dev/null || die "xz is required to unpack .tar.xz (apt-get install xz-utils)"
mkdir -p "$dest" || die "cannot create $dest"

downloaded=0
if [ -z "$archive" ]; then
  archive="$dest/.download/$(basename "${url%%\?*}")"
  mkdir -p "$(dirname "$archive")"
  echo "fetch_mvtec: downloading $url"
  echo "             -> $archive (resumes a partial download)"
  if command -v curl >/dev/null; then
    curl -fL --retry 3 -C - -o "$archive" "$url" ||
      die "download failed. The link may have expired: get the current one from https://www.mvtec.com/company/research/datasets/mvtec-ad and pass --url (or download it in a browser and pass --archive)"
  elif command -v wget >/dev/null; then
    wget -c -O "$archive" "$url" ||
      die "download failed. The link may have expired: get the current one from https://www.mvtec.com/company/research/datasets/mvtec-ad and pass --url (or download it in a browser and pass --archive)"
  else
    die "curl or wget is required to download (or pass --archive FILE)"
  fi
  downloaded=1
fi
[ -s "$archive" ] || die "archive $archive is missing or empty"

if [ -n "$sha" ]; then
  echo "fetch_mvtec: verifying sha256 of $archive"
  got="$(sha256sum "$archive" | cut -d' ' -f1)"
  [ "$got" = "$(echo "$sha" | tr 'A-F' 'a-f')" ] || die "checksum mismatch for $archive: got $got, expected $sha"
else
  echo "fetch_mvtec: no --sha256 given; sha256 of the archive is $(sha256sum "$archive" | cut -d' ' -f1)"
fi

echo "fetch_mvtec: unpacking into $dest"
if [ "${cats[0]}" = all ]; then
  tar -xJf "$archive" -C "$dest" || die "unpacking $archive failed (truncated download?)"
else
  patterns=()
  for c in "${cats[@]}"; do patterns+=("$c/*"); done
  tar -xJf "$archive" -C "$dest" --wildcards --no-anchored "${patterns[@]}" ||
    die "unpacking ${cats[*]} from $archive failed (category not in this archive, or truncated download)"
fi

# check what arrived
found=0
for c in $CATEGORIES; do
  d="$dest/$c"
  [ -d "$d" ] || continue
  if [ "${cats[0]}" != all ]; then case " ${cats[*]} " in *" $c "*) ;; *) continue ;; esac; fi
  if [ ! -d "$d/train/good" ] || [ ! -d "$d/test" ] || [ ! -d "$d/ground_truth" ]; then
    die "$d is incomplete (expected train/good, test, ground_truth)"
  fi
  ntrain=$(find "$d/train/good" -maxdepth 1 -type f -name '*.png' | wc -l)
  ntest=$(find "$d/test" -mindepth 2 -maxdepth 2 -type f -name '*.png' | wc -l)
  echo "  $c: train/good $ntrain images, test $ntest images"
  found=$((found + 1))
done
[ "$found" -gt 0 ] || die "no MVTec category found under $dest after unpacking"

if [ "$downloaded" = 1 ] && [ "$keep" = 0 ]; then rm -f "$archive"; rmdir "$dest/.download" 2>/dev/null || true; fi
echo "fetch_mvtec: done ($found category folder(s) in $dest). Licence: CC BY-NC-SA 4.0, cite Bergmann et al., CVPR 2019."
