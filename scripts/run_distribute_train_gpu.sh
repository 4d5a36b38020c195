#!/usr/bin/env bash
# The original name of the GPU launcher: run_distribute_train.sh with DEVICE_TARGET=GPU (NCCL).
# Usage: bash scripts/run_distribute_train_gpu.sh DATA_PATH [DEVICE_NUM] [train.py flags...]
set -euo pipefail
DEVICE_TARGET=GPU exec bash "$(dirname "${BASH_SOURCE[0]}")/run_distribute_train.sh" "$@"
