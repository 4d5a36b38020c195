#!/usr/bin/env bash
# The original model zoo's Ascend launcher, with its argument order, over run_distribute_train.sh:
#   bash scripts/run_distribute_train_ascend.sh DATA_URL RANK_TABLE_FILE DEVICE_NUM [train.py flags...]
# It launches the classic way, one train.py per device with RANK_ID/DEVICE_ID/RANK_SIZE.
set -euo pipefail
if (($# < 3)); then
  echo "error: DATA_URL, RANK_TABLE_FILE and DEVICE_NUM are required" >&2
  echo "Usage: bash scripts/run_distribute_train_ascend.sh DATA_URL RANK_TABLE_FILE DEVICE_NUM [train.py flags...]" >&2
  exit 1
fi
DEVICE_TARGET=Ascend RANK_TABLE_FILE="$2" exec bash "$(dirname "${BASH_SOURCE[0]}")/run_distribute_train.sh" \
  "$1" "$3" "${@:4}"
