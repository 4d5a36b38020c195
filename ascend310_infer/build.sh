#!/usr/bin/env bash
# Build the 310 inference app into ascend310_infer/out/<backend>/main.
#
#   bash build.sh          Ascend host: link MindSpore's library (MINDSPORE_PATH, or the folder
#                          of the installed mindspore Python package)
#   bash build.sh cpu      any Linux machine: link the dev/CI runtime of cpu_runtime/, against the
#                          real API headers (fetched once by cpu_runtime/fetch_headers.sh)
# The backend can also come from DEVICE_TARGET (CPU or Ascend). PYTHON picks the interpreter.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
# Python never imports from the caller's folder (a pip.py there would run).
export PYTHONSAFEPATH=1
target="${1:-${DEVICE_TARGET:-Ascend}}"
case "${target,,}" in
    cpu) backend=cpu ;;
    ascend|ascend310) backend=ascend ;;
    *) echo "error: unknown backend '$target'; use Ascend (the default) or CPU" >&2; exit 1 ;;
esac

options=(-DMS_BACKEND="$backend")
if [[ "$backend" == cpu ]]; then
    ms_path="$(PYTHON="$python" bash "$here/cpu_runtime/fetch_headers.sh")"
    # The real interpreter, not a shim script: the embedded Python starts as this program.
    options+=(-DPython3_EXECUTABLE="$("$python" -c 'import sys; print(sys.executable)')")
else
    if [[ -z "${MINDSPORE_PATH:-}" ]] && ! MINDSPORE_PATH="$("$python" -c \
            'import mindspore, os; print(os.path.dirname(mindspore.__file__))' 2>/dev/null)"; then
        echo "error: mindspore is not importable with $python; install the MindSpore Ascend package or set MINDSPORE_PATH" >&2
        exit 1
    fi
    ms_path="$MINDSPORE_PATH"
fi

build_dir="$here/out/$backend"
cmake -S "$here" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DMINDSPORE_PATH="$ms_path" "${options[@]}"
cmake --build "$build_dir" -j "$(nproc)"
echo "built $build_dir/main"
