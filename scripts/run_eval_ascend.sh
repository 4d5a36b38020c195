#!/usr/bin/env bash
# The original model zoo's launcher name: run_eval.sh on Ascend.
#   bash scripts/run_eval_ascend.sh DATA_URL CHECKPOINT_PATH|CHECKPOINT_DIR [DEVICE_ID] [eval.py flags...]
set -euo pipefail
DEVICE_TARGET=Ascend exec bash "$(dirname "${BASH_SOURCE[0]}")/run_eval.sh" "$@"
