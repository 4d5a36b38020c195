#!/usr/bin/env bash
# Print the folder of the MindSpore Lite 2.0.0 C++ runtime that CI builds the app on, fetching it on
# first use. Development and CI on the CPU only: an Ascend 310 host installs its own MindSpore Lite
# release and sets MINDSPORE_LITE_HOME (docs/inference.md).
#
# The registry's only Lite package is the mindspore-lite 2.0.0 wheel (CPython 3.7, 168 MB). Its
# include/ and lib/ hold Lite's C++ API and libmindspore-extendrt_python.so, which exports that API
# and needs no Python. The wheel is downloaded once with pip (or taken from MINDSPORE_LITE_WHEEL),
# checked against its SHA-256, and include/ and lib/ are unpacked into a cache outside the repository:
#   ${SKNET50_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sknet50}/mindspore_lite/2.0.0
# Every call checks the cached files' names and sizes against the manifest written at unpacking (a
# full SHA-256 check of 480 MB would cost seconds per build); a damaged cache is fetched again. Nothing of Lite is ever committed to this repository (Apache-2.0, Huawei).
set -euo pipefail

version=2.0.0
wheel_name="mindspore_lite-$version-cp37-cp37m-manylinux1_x86_64.whl"
# sha256sum of the wheel as the registry served it on 2026-11-27.
wheel_sha256=199cd0605cc985b88eddb273db9dfe9000a585ba10ca2292b6b36ebfff07b3ec
python="${PYTHON:-python3}"
export PYTHONSAFEPATH=1  # Python never imports from the caller's folder (a pip.py there would run)
cache_root="${SKNET50_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sknet50}"
dest="$cache_root/mindspore_lite/$version"
# Written last, with the size of every unpacked file: a cache without it is an interrupted fetch.
manifest="$dest/.manifest"

# "SIZE PATH" of every file under include/ and lib/ of the folder $1, sorted by path.
list_files() {
    (cd "$1" && find include lib -type f -printf '%s %p\n' | LC_ALL=C sort -k2)
}

if [[ -f "$manifest" ]]; then
    if [[ "$(list_files "$dest")" == "$(cat "$manifest")" ]]; then
        echo "$dest"
        exit 0
    fi
    echo "the cached MindSpore Lite $version in $dest is damaged; fetching it again" >&2
fi
mkdir -p "$cache_root/mindspore_lite"
work="$(mktemp -d "$cache_root/mindspore_lite/.fetch-XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [[ -n "${MINDSPORE_LITE_WHEEL:-}" ]]; then
    if [[ ! -f "$MINDSPORE_LITE_WHEEL" ]]; then
        echo "error: MINDSPORE_LITE_WHEEL=$MINDSPORE_LITE_WHEEL is not a file; unset it to download $wheel_name" >&2
        exit 1
    fi
    wheel="$MINDSPORE_LITE_WHEEL"
else
    echo "fetching MindSpore Lite $version (the $wheel_name, 168 MB, once) into $dest" >&2
    if ! "$python" -m pip download "mindspore-lite==$version" --no-deps --only-binary=:all: --no-cache-dir \
            --python-version 3.7 --implementation cp --abi cp37m --platform manylinux1_x86_64 \
            --dest "$work/wheel" > "$work/pip.log" 2>&1; then
        echo "error: pip could not download mindspore-lite==$version ($(tail -n 1 "$work/pip.log")); check pip's index and network, or set MINDSPORE_LITE_WHEEL to a downloaded $wheel_name" >&2
        exit 1
    fi
    wheel="$work/wheel/$wheel_name"
fi
actual="$(sha256sum "$wheel" | cut -d' ' -f1)"
if [[ "$actual" != "$wheel_sha256" ]]; then
    echo "error: $wheel has SHA-256 $actual, not the $wheel_sha256 of $wheel_name; it is damaged or another file, delete it and fetch again" >&2
    exit 1
fi
# The C++ headers and libraries only; the CPython 3.7 extension is left out, the app needs no Python.
if ! "$python" - "$wheel" "$work/lite" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    names = [name for name in archive.namelist() if name.startswith(("mindspore_lite/include/", "mindspore_lite/lib/"))
             and not name.startswith("mindspore_lite/lib/_c_lite_wrapper") and not name.endswith("/")]
    archive.extractall(out, members=names)
PY
then
    echo "error: cannot unpack $wheel into $work; check the free space of $cache_root" >&2
    exit 1
fi
if [[ ! -f "$work/lite/mindspore_lite/include/api/model.h" || ! -f "$work/lite/mindspore_lite/lib/libmindspore-extendrt_python.so" ]]; then
    echo "error: $wheel_name holds no include/api/model.h or lib/libmindspore-extendrt_python.so; the layout of the wheel changed" >&2
    exit 1
fi
list_files "$work/lite/mindspore_lite" > "$work/manifest"
rm -rf "$dest"
mv "$work/lite/mindspore_lite" "$dest"
mv "$work/manifest" "$manifest"
echo "$dest"
