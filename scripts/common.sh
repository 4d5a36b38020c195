#!/usr/bin/env bash
# Helpers shared by the launchers in scripts/ (sourced, not run): absolute paths, argument checks
# that stop before anything starts, per-run log folders, and the optional JOB_TIMEOUT.
# A launcher defines usage() before it sources this file.

# The repository root, whatever the caller's working directory.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT
# Python never imports from the caller's folder (a yaml.py or pip.py there would run): PYTHONSAFEPATH
# drops the unsafe sys.path entry, and PYTHONPATH names the project instead.
export PYTHONSAFEPATH=1 PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"

# Print "error: MESSAGE" and the launcher's usage on stderr, then exit 1 (nothing has started yet).
usage_error() {
  echo "error: $1" >&2
  usage >&2
  exit 1
}

# The absolute, normalised form of a path, which need not exist yet.
abs_path() {
  realpath -m -- "$1"
}

# optional_positional NAME DEFAULT ARGS...: set NAME to the first of ARGS, or to DEFAULT when there is
# none or it is a flag (--key); POSITIONAL_USED says how many arguments the caller must shift (0 or 1).
# shellcheck disable=SC2034  # POSITIONAL_USED is read by the launcher that sources this file
optional_positional() {
  POSITIONAL_USED=0
  printf -v "$1" '%s' "$2"
  if (($# >= 3)) && [[ $3 != --* ]]; then
    printf -v "$1" '%s' "$3"
    POSITIONAL_USED=1
  fi
}

# require_positive_int NAME VALUE
require_positive_int() {
  [[ $2 =~ ^[1-9][0-9]*$ ]] || usage_error "$1 must be a positive integer, got '$2'"
}

# require_non_negative_int NAME VALUE
require_non_negative_int() {
  [[ $2 =~ ^(0|[1-9][0-9]*)$ ]] || usage_error "$1 must be 0 or a positive integer, got '$2'"
}

# require_dir NAME PATH
require_dir() {
  [[ -d $2 ]] || usage_error "$1 $2 does not exist or is not a directory"
}

# require_file NAME PATH
require_file() {
  [[ -f $2 ]] || usage_error "$1 $2 does not exist or is not a file"
}

# require_path NAME PATH: a file or a directory.
require_path() {
  [[ -e $2 ]] || usage_error "$1 $2 does not exist"
}

# Check DEVICE_TARGET (environment, default Ascend) and export it.
require_device_target() {
  DEVICE_TARGET="${DEVICE_TARGET:-Ascend}"
  case "$DEVICE_TARGET" in
    Ascend | GPU | CPU) export DEVICE_TARGET ;;
    *) usage_error "DEVICE_TARGET must be Ascend, GPU or CPU, got '$DEVICE_TARGET'" ;;
  esac
}

# check_settings SPLIT FLAGS...: resolve FLAGS as train.py/eval.py will (an unknown flag or a bad value
# is an error) and check the CIFAR-10 layout of SPLIT ("train" or "eval"), once, so that a mistake
# fails here in a second and not in every rank later. Paths in FLAGS are relative to the caller's
# directory, as for the job itself. On stdout it prints "--key=/absolute/path", one a line, for each
# path setting given (by a flag or a config file) as a relative path, for ranks that run in a folder of
# their own (run_distribute_train.sh with a rank table).
check_settings() {
  python -c '
import os
import sys
sys.path.insert(0, sys.argv[1])
from src.utils.config import load_config
from src.data.cifar10_files import resolve_split_files
from src.utils.device import check_device_choices
from src.utils.errors import run_cli

def check():
    cfg = load_config(sys.argv[3:], script=sys.argv[2])  # the split names the script: train or eval
    check_device_choices(cfg)
    if not cfg.download:  # with --download the data may not be there yet
        resolve_split_files(cfg.data_path, sys.argv[2], cfg.eval_data_path)
    for key in ("config_path", "data_path", "eval_data_path", "output_path", "checkpoint_path", "pre_trained",
                "resume"):
        value = getattr(cfg, key, None)
        if isinstance(value, str) and value and value != "auto" and not os.path.isabs(value):
            print(f"--{key}={os.path.abspath(value)}")

run_cli(check)
' "$REPO_ROOT" "$@" || { usage >&2; exit 1; }
}

# make_log_dir NAME: create LOG_DIR (environment, default ./logs/NAME_<date_time>), make it absolute,
# and print it.
make_log_dir() {
  LOG_DIR="$(abs_path "${LOG_DIR:-logs/$1_$(date +%Y%m%d_%H%M%S)}")"
  mkdir -p -- "$LOG_DIR" || { echo "error: cannot create the log folder $LOG_DIR; set LOG_DIR" >&2; exit 1; }
  echo "logs: $LOG_DIR"
}

# Check JOB_TIMEOUT (seconds, 0 = no limit) and fill JOB_TIMEOUT_PREFIX, a command prefix that stops
# the job with SIGNAL after that time (and kills it 60 s later if it is still there); timeout then
# exits with 124. Pass --foreground to keep the job in the caller's process group (Ctrl+C reaches it).
# set_job_timeout SIGNAL [--foreground]
set_job_timeout() {
  JOB_TIMEOUT="${JOB_TIMEOUT:-0}"
  require_non_negative_int JOB_TIMEOUT "$JOB_TIMEOUT"
  JOB_TIMEOUT_PREFIX=()
  if ((JOB_TIMEOUT > 0)); then
    JOB_TIMEOUT_PREFIX=(timeout "${@:2}" --signal="$1" --kill-after=60 "$JOB_TIMEOUT")
  fi
}

# report_exit CODE: say how the job ended and where its logs are, then exit with CODE.
report_exit() {
  if (($1 == 0)); then
    echo "done; logs: $LOG_DIR"
  elif (($1 == 124)) && ((JOB_TIMEOUT > 0)); then
    echo "error: stopped after JOB_TIMEOUT=$JOB_TIMEOUT seconds (exit code 124); logs: $LOG_DIR" >&2
  elif (($1 == 130 || $1 == 143)); then
    echo "error: interrupted (exit code $1); logs: $LOG_DIR" >&2
  else
    echo "error: the job failed with exit code $1; logs: $LOG_DIR" >&2
  fi
  exit "$1"
}

# run_logged LOG_FILE COMMAND...: run in the foreground, copy the output to LOG_FILE, return its code.
run_logged() {
  local log_file="$1"
  shift
  "${JOB_TIMEOUT_PREFIX[@]}" "$@" 2>&1 | tee -- "$log_file"
  return "${PIPESTATUS[0]}"
}
