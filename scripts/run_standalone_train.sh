#!/usr/bin/env bash
# Training on one device. Stays in the foreground, copies the output to a log file, and exits with
# train.py's exit code. See README "Training process".
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: bash scripts/run_standalone_train.sh DATA_PATH [DEVICE_ID] [train.py flags...]
  DATA_PATH  CIFAR-10 binary data (README "Dataset")
  DEVICE_ID  device to train on (default 0)
  flags      passed on to train.py, e.g. --epoch_size 10 --output_path ./run1
Environment:
  DEVICE_TARGET  Ascend (default) | GPU | CPU
  JOB_TIMEOUT    stop after this many seconds, exit code 124 (default 0: no limit)
  LOG_DIR        folder for train.log (default ./logs/train_standalone_<time>)
USAGE
}

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$SCRIPT_DIR/common.sh"

(($# >= 1)) || usage_error "DATA_PATH is missing"
DATA_PATH="$(abs_path "$1")"
shift
optional_positional DEVICE_ID 0 "$@"
shift "$POSITIONAL_USED"
require_non_negative_int DEVICE_ID "$DEVICE_ID"
require_device_target
set_job_timeout INT --foreground
require_dir DATA_PATH "$DATA_PATH"
TRAIN_FLAGS=(--data_path "$DATA_PATH" --device_target "$DEVICE_TARGET" --device_id "$DEVICE_ID" "$@")
check_settings train "${TRAIN_FLAGS[@]}" >/dev/null

make_log_dir train_standalone
code=0
run_logged "$LOG_DIR/train.log" python "$REPO_ROOT/train.py" "${TRAIN_FLAGS[@]}" || code=$?
report_exit "$code"
