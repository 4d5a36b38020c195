#!/usr/bin/env bash
# Evaluation of a checkpoint, a folder of checkpoints, or a .mindir file on one device. Stays in the
# foreground, copies the output to a log file, and exits with eval.py's exit code.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: bash scripts/run_eval.sh DATA_PATH CHECKPOINT_PATH [DEVICE_ID] [eval.py flags...]
  DATA_PATH        CIFAR-10 binary data with the test split (README "Dataset")
  CHECKPOINT_PATH  a .ckpt file, a folder of .ckpt files, or a .mindir file
  DEVICE_ID        device to evaluate on (default 0)
  flags            passed on to eval.py, e.g. --result_json results.json
Environment:
  DEVICE_TARGET  Ascend (default) | GPU | CPU
  JOB_TIMEOUT    stop after this many seconds, exit code 124 (default 0: no limit)
  LOG_DIR        folder for eval.log (default ./logs/eval_<time>)
USAGE
}

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$SCRIPT_DIR/common.sh"

(($# >= 2)) || usage_error "DATA_PATH and CHECKPOINT_PATH are required"
DATA_PATH="$(abs_path "$1")"
CHECKPOINT_PATH="$(abs_path "$2")"
shift 2
optional_positional DEVICE_ID 0 "$@"
shift "$POSITIONAL_USED"
require_non_negative_int DEVICE_ID "$DEVICE_ID"
require_device_target
set_job_timeout INT --foreground
require_dir DATA_PATH "$DATA_PATH"
require_path CHECKPOINT_PATH "$CHECKPOINT_PATH"
EVAL_FLAGS=(--data_path "$DATA_PATH" --checkpoint_path "$CHECKPOINT_PATH" --device_target "$DEVICE_TARGET"
  --device_id "$DEVICE_ID" "$@")
check_settings eval "${EVAL_FLAGS[@]}" >/dev/null

make_log_dir eval
code=0
run_logged "$LOG_DIR/eval.log" python "$REPO_ROOT/eval.py" "${EVAL_FLAGS[@]}" || code=$?
report_exit "$code"
