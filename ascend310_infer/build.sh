#!/usr/bin/env bash
# Build the 310 inference app on MindSpore Lite into ascend310_infer/out/<backend>/main.
#
#   bash build.sh          Ascend 310 host: MINDSPORE_LITE_HOME is the unpacked MindSpore Lite release
#                          (mindspore-lite-*-linux-*, with runtime/include and runtime/lib)
#   bash build.sh cpu      any x86-64 Linux machine: MINDSPORE_LITE_HOME if set, else MindSpore Lite
#                          2.0.0's C++ runtime from the mindspore-lite wheel (fetch_lite.sh; dev/CI)
# The backend can also come from DEVICE_TARGET (CPU or Ascend). PYTHON picks the interpreter.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Python (pip in fetch_lite.sh) never imports from the caller's folder (a pip.py there would run).
export PYTHONSAFEPATH=1
target="${1:-${DEVICE_TARGET:-Ascend}}"
case "${target,,}" in
    cpu) backend=cpu ;;
    ascend|ascend310) backend=ascend ;;
    *) echo "error: unknown backend '$target'; use Ascend (the default) or CPU" >&2; exit 1 ;;
esac

lite_home="${MINDSPORE_LITE_HOME:-}"
if [[ -z "$lite_home" && "$backend" == cpu ]]; then
    lite_home="$(bash "$here/fetch_lite.sh")"
elif [[ -z "$lite_home" ]]; then
    echo "error: MINDSPORE_LITE_HOME is not set; point it at the MindSpore Lite release unpacked on this Ascend host (docs/inference.md)" >&2
    exit 1
fi
for tool in cmake g++; do
    if ! command -v "$tool" > /dev/null; then
        echo "error: $tool is not installed; install cmake, g++, make and libgflags-dev (e.g. apt-get install cmake g++ make libgflags-dev)" >&2
        exit 1
    fi
done

build_dir="$here/out/$backend"
cmake -S "$here" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DMINDSPORE_LITE_HOME="$lite_home"
cmake --build "$build_dir" -j "$(nproc)"
echo "built $build_dir/main against $lite_home"
