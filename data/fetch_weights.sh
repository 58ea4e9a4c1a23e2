#!/bin/sh
# Download torchvision's ImageNet weights of one backbone for users with internet access, into
# the same place torchvision keeps them (where `stfpm train --backbone B` looks by default):
#     ${TORCH_HOME:-~/.cache/torch}/hub/checkpoints/<file>
# and check the SHA-256. stfpm reads the files unchanged (torch zip format, state_dict).
#
#   backbone          file (torchvision weights)
#   resnet18          resnet18-f37072fd.pth          (IMAGENET1K_V1, the STFPM paper's teacher)
#   resnet34          resnet34-b627a593.pth          (IMAGENET1K_V1)
#   resnet50          resnet50-11ad3fa6.pth          (IMAGENET1K_V2, torchvision's default)
#   resnet50_v1       resnet50-0676ba61.pth          (IMAGENET1K_V1)
#   wide_resnet50_2   wide_resnet50_2-9ba9bcbe.pth   (IMAGENET1K_V2, torchvision's default)
#   wide_resnet50_2_v1 wide_resnet50_2-95faca4d.pth  (IMAGENET1K_V1, anomalib's and most
#                                                     anomaly-detection papers' choice)
# (resnet50_v1 and wide_resnet50_2_v1 select the older weights; the network is the same.)
#
# Checksum: torchvision itself only checks that the file's SHA-256 starts with the 8 hex digits
# in its name. For resnet18 the script checks the full digest: it was not computed here (no
# network); it is the value several independent public projects pin for this exact URL (with
# the size 46,830,571 bytes). For the other files no full digest could be confirmed here, so the
# script checks torchvision's 8-hex-digit prefix only, as torchvision does (say so when it
# prints). STFPM_WEIGHTS_PREFIX_ONLY=1 relaxes resnet18's check to the prefix as well.
#
# Usage: sh data/fetch_weights.sh [BACKBONE] [destination-directory]   (BACKBONE default resnet18;
#        a first argument that is not a backbone name is taken as the directory, as before)
set -eu

BACKBONE=resnet18
case "${1:-}" in
    resnet18|resnet34|resnet50|resnet50_v1|wide_resnet50_2|wide_resnet50_2_v1) BACKBONE=$1; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    resnet*|wide_resnet*)
        echo "fetch_weights: unknown backbone $1 (resnet18, resnet34, resnet50, resnet50_v1, wide_resnet50_2," \
             "wide_resnet50_2_v1)" >&2
        exit 2 ;;
esac

SHA256=""
case "$BACKBONE" in
    resnet18) NAME="resnet18-f37072fd.pth"
              SHA256="f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec" ;;
    resnet34) NAME="resnet34-b627a593.pth" ;;
    resnet50) NAME="resnet50-11ad3fa6.pth" ;;
    resnet50_v1) NAME="resnet50-0676ba61.pth" ;;
    wide_resnet50_2) NAME="wide_resnet50_2-9ba9bcbe.pth" ;;
    wide_resnet50_2_v1) NAME="wide_resnet50_2-95faca4d.pth" ;;
esac
URL="https://download.pytorch.org/models/$NAME"
PREFIX=$(echo "$NAME" | sed 's/.*-\([0-9a-f]\{8\}\)\.pth$/\1/')

DEST_DIR="${1:-${TORCH_HOME:-$HOME/.cache/torch}/hub/checkpoints}"
DEST="$DEST_DIR/$NAME"

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    elif command -v openssl >/dev/null 2>&1; then
        openssl dgst -sha256 "$1" | sed 's/.*= *//'
    else
        echo "fetch_weights: need sha256sum, shasum or openssl to check the download" >&2
        exit 1
    fi
}

check() {
    got=$(sha256_of "$1")
    if [ -z "$SHA256" ] || [ "${STFPM_WEIGHTS_PREFIX_ONLY:-0}" = "1" ]; then
        case "$got" in
            "$PREFIX"*)
                [ -n "$SHA256" ] || echo "fetch_weights: SHA-256 of $1 starts with $PREFIX (torchvision's check;" \
                                         "no full digest is pinned for this file)" >&2
                return 0 ;;
        esac
        echo "fetch_weights: $1 has SHA-256 $got, which does not start with $PREFIX" >&2
        return 1
    elif [ "$got" = "$SHA256" ]; then
        return 0
    fi
    echo "fetch_weights: $1 has SHA-256 $got, expected $SHA256" >&2
    return 1
}

if [ -f "$DEST" ]; then
    if check "$DEST"; then
        echo "$DEST is present and its checksum matches"
        exit 0
    fi
    echo "fetch_weights: downloading again" >&2
fi

mkdir -p "$DEST_DIR"
TMP="$DEST.part.$$"
trap 'rm -f "$TMP"' EXIT INT TERM
if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 3 -o "$TMP" "$URL"
elif command -v wget >/dev/null 2>&1; then
    wget -O "$TMP" "$URL"
else
    echo "fetch_weights: need curl or wget" >&2
    exit 1
fi

if ! check "$TMP"; then
    echo "fetch_weights: checksum mismatch, download discarded" >&2
    exit 1
fi
mv "$TMP" "$DEST"
trap - EXIT INT TERM
echo "saved $DEST"
