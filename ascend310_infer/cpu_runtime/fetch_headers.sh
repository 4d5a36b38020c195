#!/usr/bin/env bash
# Print the folder of MindSpore's C++ API headers (include/api/*.h), fetching them on first use.
#
# Only the mindspore 2.7.0 wheel ships these headers (2.8 and later ship none), so the wheel
# (~750 MB) is downloaded once with pip, the headers (~1 MB) are extracted into a cache outside
# the repository, and the wheel is deleted. Later calls reuse the cache and download nothing.
#   cache: ${SKNET50_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sknet50}/ms_headers/2.7.0
# The headers are Apache-2.0 licensed by Huawei and are never committed to this repository.
set -euo pipefail

version=2.7.0
python="${PYTHON:-python3}"
# Python never imports from the caller's folder (a pip.py there would run).
export PYTHONSAFEPATH=1
cache_root="${SKNET50_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sknet50}"
dest="$cache_root/ms_headers/$version"
# Written last: a cache without it is an interrupted fetch and is fetched again.
stamp="$dest/.complete"

if [[ -f "$stamp" ]]; then
    echo "$dest"
    exit 0
fi
mkdir -p "$cache_root/ms_headers"
work="$(mktemp -d "$cache_root/ms_headers/.fetch-XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "fetching the MindSpore $version C++ API headers (a ~750 MB wheel, once) into $dest" >&2
# The wheel for CPython 3.11 on x86-64; the headers are the same in every wheel of a release.
if ! "$python" -m pip download "mindspore==$version" --no-deps --only-binary=:all: --no-cache-dir \
        --python-version 3.11 --implementation cp --abi cp311 --platform manylinux1_x86_64 \
        --dest "$work/wheel" >&2; then
    echo "error: pip could not download mindspore==$version, whose wheel holds the C++ API headers; check pip's index and network" >&2
    exit 1
fi
# Extract only the API headers and the one mindapi header that they include.
"$python" - "$work/wheel" "$work/headers" <<'PY'
import glob, sys, zipfile
wheel_dir, out = sys.argv[1], sys.argv[2]
wheels = glob.glob(f"{wheel_dir}/mindspore-*.whl")
if len(wheels) != 1:
    sys.exit(f"error: expected one mindspore wheel in {wheel_dir}, found {wheels}")
prefixes = ("mindspore/include/api/", "mindspore/include/mindapi/base/")
with zipfile.ZipFile(wheels[0]) as wheel:
    names = [name for name in wheel.namelist() if name.startswith(prefixes) and name.endswith(".h")]
    wheel.extractall(out, members=names)
PY
if [[ ! -f "$work/headers/mindspore/include/api/model.h" ]]; then
    echo "error: the mindspore $version wheel has no include/api/model.h; the C++ API headers moved" >&2
    exit 1
fi
rm -rf "$dest"
mv "$work/headers/mindspore" "$dest"
touch "$stamp"
echo "$dest"
