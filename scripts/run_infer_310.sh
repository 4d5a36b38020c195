#!/usr/bin/env bash
# Offline inference of an exported MINDIR on the CIFAR-10 eval set with the C++ app on MindSpore Lite.
#
#   bash scripts/run_infer_310.sh MINDIR_PATH DATASET_NAME DATASET_PATH NEED_PREPROCESS [DEVICE_ID]
#
#   MINDIR_PATH      the file written by export.py (its input shape sets the batch and image size)
#   DATASET_NAME     cifar10
#   DATASET_PATH     the CIFAR-10 binary data (the folder with test_batch.bin, or its parent)
#   NEED_PREPROCESS  y: write the input files; n: reuse those of an earlier run
#   DEVICE_ID        the Ascend device (default 0)
# Environment: MINDSPORE_LITE_HOME is the MindSpore Lite release to build on (required on Ascend).
# DEVICE_TARGET=CPU runs the app on the CPU (default Ascend); without MINDSPORE_LITE_HOME it builds on
# MindSpore Lite 2.0.0 from the mindspore-lite wheel and first rewrites the MINDIR into Lite 2.0's
# dialect (tools/mindir_to_lite20.py): development and CI only, never the path on a 310 host.
# OUTPUT_DIR (default ./infer_310) receives everything, CONFIG_PATH is passed to the Python steps,
# PYTHON picks the interpreter. Works from any directory. Each stage logs to OUTPUT_DIR/<stage>.log;
# the first failing stage stops the run and shows its log. The accuracy ends in OUTPUT_DIR/acc.log.
set -euo pipefail

usage="usage: bash $0 MINDIR_PATH DATASET_NAME DATASET_PATH NEED_PREPROCESS(y|n) [DEVICE_ID]"
if [[ $# -lt 4 || $# -gt 5 ]]; then
    echo "error: expected 4 or 5 arguments, got $#; $usage" >&2
    exit 1
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
# Python never imports from the caller's folder (a yaml.py or pip.py there would run): PYTHONSAFEPATH
# drops the unsafe sys.path entry, and PYTHONPATH names the project instead.
export PYTHONSAFEPATH=1 PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

get_real_path() {
    if [[ "$1" == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi
}

mindir_path="$(get_real_path "$1")"
dataset_name="$2"
dataset_path="$(get_real_path "$3")"
need_preprocess="${4,,}"
device_id="${5:-0}"
out="$(get_real_path "${OUTPUT_DIR:-infer_310}")"

case "${DEVICE_TARGET:-Ascend}" in
    Ascend|ascend|Ascend310) backend=Ascend; device_type=Ascend310 ;;
    CPU|cpu) backend=CPU; device_type=CPU ;;
    *) echo "error: DEVICE_TARGET=${DEVICE_TARGET} is unknown; use Ascend (default) or CPU" >&2; exit 1 ;;
esac
if [[ "$dataset_name" != cifar10 ]]; then
    echo "error: DATASET_NAME '$dataset_name' is not supported; this model is trained on cifar10" >&2
    exit 1
fi
if [[ ! -f "$mindir_path" ]]; then
    echo "error: MINDIR_PATH $mindir_path is not a file; export one with export.py" >&2
    exit 1
fi
if [[ "$need_preprocess" != y && "$need_preprocess" != n ]]; then
    echo "error: NEED_PREPROCESS must be y or n, got '$4'; $usage" >&2
    exit 1
fi
if [[ ! "$device_id" =~ ^[0-9]+$ ]]; then
    echo "error: DEVICE_ID must be a number, got '$device_id'" >&2
    exit 1
fi
if [[ "$backend" == Ascend && -z "${MINDSPORE_LITE_HOME:-}" ]]; then
    echo "error: MINDSPORE_LITE_HOME is not set; point it at the MindSpore Lite release unpacked on this Ascend host (docs/inference.md), or set DEVICE_TARGET=CPU" >&2
    exit 1
fi
config_args=()
if [[ -n "${CONFIG_PATH:-}" ]]; then
    config_args=(--config_path "$(get_real_path "$CONFIG_PATH")")
fi

mkdir -p "$out"
preprocess_dir="$out/preprocess_Result"
result_dir="$out/result_Files"

# run_stage NAME COMMAND...: run with output in $out/NAME.log; on failure show the log and stop.
run_stage() {
    local name="$1" log="$out/$1.log"
    shift
    echo "[$name] log: $log"
    if ! "$@" > "$log" 2>&1; then
        echo "error: stage '$name' failed; the end of $log:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
}

if [[ "$need_preprocess" == y ]]; then
    run_stage preprocess "$python" "$repo/preprocess.py" "${config_args[@]}" --data_path "$dataset_path" \
        --output_path "$preprocess_dir" --mindir_path "$mindir_path"
elif [[ ! -f "$preprocess_dir/meta.json" ]]; then
    echo "error: NEED_PREPROCESS=n, but $preprocess_dir holds no complete preprocess output; pass y" >&2
    exit 1
fi
run_stage build bash "$repo/ascend310_infer/build.sh" "$backend"
model="$mindir_path"
if [[ "$backend" == CPU && -z "${MINDSPORE_LITE_HOME:-}" ]]; then
    # CI's Lite 2.0.0 cannot read the MINDIR dialect of MindSpore 2.10 (see the tool's docstring).
    model="$out/model_lite20.mindir"
    run_stage lite20_mindir env PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$python" -m tools.mindir_to_lite20 \
        "$mindir_path" "$model"
fi
rm -rf "$result_dir"  # results of an earlier run must not be counted
if [[ -n "${MINDSPORE_LITE_HOME:-}" ]]; then
    # The folders of a Lite release's libraries, as the model zoo's launchers name them; the app's RPATH has
    # them too, but a library with a RUNPATH of its own would not search there for its dependencies.
    lite="$(get_real_path "$MINDSPORE_LITE_HOME")"
    export LD_LIBRARY_PATH="$lite/runtime/lib:$lite/runtime/third_party/glog:$lite/runtime/third_party/dnnl:$lite/tools/converter/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
run_stage infer "$repo/ascend310_infer/out/${backend,,}/main" --mindir_path "$model" \
    --input0_path "$preprocess_dir/images" --device_id "$device_id" --device_type "$device_type" \
    --result_path "$result_dir" --time_path "$out/time_Result"
run_stage postprocess "$python" "$repo/postprocess.py" "${config_args[@]}" --result_path "$result_dir" \
    --label_path "$preprocess_dir/labels.npy"
tail -n 1 "$out/infer.log"
cat "$out/acc.log"
