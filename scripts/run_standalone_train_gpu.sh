#!/usr/bin/env bash
# The original model zoo's launcher name: run_standalone_train.sh on a GPU.
#   bash scripts/run_standalone_train_gpu.sh DATA_URL [DEVICE_ID] [train.py flags...]
set -euo pipefail
DEVICE_TARGET=GPU exec bash "$(dirname "${BASH_SOURCE[0]}")/run_standalone_train.sh" "$@"
