#!/usr/bin/env bash
# The original model zoo's GPU launcher over run_distribute_train.sh with DEVICE_TARGET=GPU (NCCL).
#   bash scripts/run_distribute_train_gpu.sh DATA_URL VISIBLE_DEVICES DEVICE_NUM [train.py flags...]
#     (the original's order, e.g. DATA 0,1,2,3 4: CUDA_VISIBLE_DEVICES=0,1,2,3, 4 ranks)
#   bash scripts/run_distribute_train_gpu.sh DATA_URL [DEVICE_NUM] [train.py flags...]
#     (this project's earlier form; all visible GPUs)
# A device list with a comma, or a device and a DEVICE_NUM, is the original form; a single number alone
# is DEVICE_NUM. DEVICE_NUM defaults to the number of listed devices.
set -euo pipefail
LAUNCHER="$(dirname "${BASH_SOURCE[0]}")/run_distribute_train.sh"
if (($# >= 2)) && [[ $2 =~ ^[0-9]+(,[0-9]+)*$ ]] && { [[ $2 == *,* ]] || [[ ${3:-} =~ ^[0-9]+$ ]]; }; then
  IFS=, read -r -a DEVICES <<<"$2"
  DEVICE_NUM="${#DEVICES[@]}"
  REST=("${@:3}")
  if (($# >= 3)) && [[ $3 != --* ]]; then
    DEVICE_NUM="$3"
    REST=("${@:4}")
  fi
  # Ranks on this machine take one listed GPU each; more ranks than GPUs would share devices.
  if [[ ${LOCAL_DEVICE_NUM:-$DEVICE_NUM} =~ ^[0-9]+$ ]] && ((${LOCAL_DEVICE_NUM:-$DEVICE_NUM} > ${#DEVICES[@]})); then
    echo "error: DEVICE_NUM=$DEVICE_NUM ranks on this machine but VISIBLE_DEVICES=$2 lists ${#DEVICES[@]} GPUs; list one GPU per rank" >&2
    echo "Usage: bash scripts/run_distribute_train_gpu.sh DATA_URL VISIBLE_DEVICES DEVICE_NUM [train.py flags...]" >&2
    exit 1
  fi
  CUDA_VISIBLE_DEVICES="$2" DEVICE_TARGET=GPU exec bash "$LAUNCHER" "$1" "$DEVICE_NUM" "${REST[@]}"
fi
DEVICE_TARGET=GPU exec bash "$LAUNCHER" "$@"
