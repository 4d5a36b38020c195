#!/usr/bin/env bash
# Data-parallel training on several devices (one process, or "rank", per device), launched with
# MindSpore's msrun: HCCL on Ascend, NCCL on GPU, MCCL on CPU. With RANK_TABLE_FILE set, the classic
# Ascend way instead: one train.py per device with RANK_ID/DEVICE_ID/RANK_SIZE. Stays in the
# foreground and exits with the job's exit code. See docs/distributed.md.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: bash scripts/run_distribute_train.sh DATA_PATH [DEVICE_NUM] [train.py flags...]
  DATA_PATH   CIFAR-10 binary data (README "Dataset")
  DEVICE_NUM  number of ranks in the whole job, on all machines (default 8)
  flags       passed on to train.py, e.g. --epoch_size 10 --output_path ./run1
              (relative paths are relative to the current directory)
Environment:
  DEVICE_TARGET     Ascend (default) | GPU | CPU   (run_distribute_train_gpu.sh sets GPU)
  LOCAL_DEVICE_NUM  ranks on this machine (default DEVICE_NUM; set it with several machines)
  NODE_RANK         this machine's index, 0 on the master (required with several machines)
  MASTER_ADDR       address of the NODE_RANK=0 machine (default 127.0.0.1, for one machine)
  MASTER_PORT       a free port on that machine (default 8118)
  CLUSTER_TIMEOUT   seconds the ranks wait for each other to start (default 600)
  JOB_TIMEOUT       stop the whole job after this many seconds, exit code 124 (default 0: no limit)
  STOP_GRACE        after Ctrl+C/SIGTERM, seconds the ranks get to save at a step boundary before
                    the job is killed (default 300; a second Ctrl+C kills it at once)
  RANK_TABLE_FILE   Ascend only: launch the classic way with this HCCL rank table, not msrun
  LOG_DIR           folder for the rank logs worker_<rank>.log (default ./logs/train_distribute_<time>)
USAGE
}

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$SCRIPT_DIR/common.sh"

# ---- arguments: all checked before anything starts ----
(($# >= 1)) || usage_error "DATA_PATH is missing"
DATA_PATH="$(abs_path "$1")"
shift
optional_positional DEVICE_NUM 8 "$@"
shift "$POSITIONAL_USED"
require_positive_int DEVICE_NUM "$DEVICE_NUM"
require_device_target
LOCAL_DEVICE_NUM="${LOCAL_DEVICE_NUM:-$DEVICE_NUM}"
require_positive_int LOCAL_DEVICE_NUM "$LOCAL_DEVICE_NUM"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-8118}"
if ! [[ $MASTER_PORT =~ ^[0-9]+$ ]] || ((MASTER_PORT < 1024 || MASTER_PORT > 65535)); then
  usage_error "MASTER_PORT must be a port number from 1024 to 65535, got '$MASTER_PORT'"
fi
CLUSTER_TIMEOUT="${CLUSTER_TIMEOUT:-600}"
require_positive_int CLUSTER_TIMEOUT "$CLUSTER_TIMEOUT"
STOP_GRACE="${STOP_GRACE:-300}"
require_positive_int STOP_GRACE "$STOP_GRACE"
# No machine has more accelerators than this; a bigger number is a typo (on the CPU, ranks share cores).
MAX_LOCAL_RANKS=16
if [[ $DEVICE_TARGET == CPU ]]; then MAX_LOCAL_RANKS=64; fi
if ((LOCAL_DEVICE_NUM > MAX_LOCAL_RANKS)); then
  usage_error "$LOCAL_DEVICE_NUM ranks on this machine (LOCAL_DEVICE_NUM, default DEVICE_NUM) is more than any $DEVICE_TARGET machine has; at most $MAX_LOCAL_RANKS (for several machines set LOCAL_DEVICE_NUM and NODE_RANK)"
fi
if ((LOCAL_DEVICE_NUM > DEVICE_NUM)); then
  usage_error "LOCAL_DEVICE_NUM=$LOCAL_DEVICE_NUM is more than DEVICE_NUM=$DEVICE_NUM (the whole job)"
fi
NODE_NUM=$((DEVICE_NUM / LOCAL_DEVICE_NUM))
if ((LOCAL_DEVICE_NUM < DEVICE_NUM)); then
  # Rank ids are NODE_RANK * LOCAL_DEVICE_NUM + local index, so every machine runs as many ranks.
  ((DEVICE_NUM % LOCAL_DEVICE_NUM == 0)) ||
    usage_error "DEVICE_NUM=$DEVICE_NUM is not a multiple of LOCAL_DEVICE_NUM=$LOCAL_DEVICE_NUM; every machine must run the same number of ranks"
  [[ -n ${NODE_RANK:-} ]] || usage_error "NODE_RANK is not set; with several machines give each one NODE_RANK=0..$((NODE_NUM - 1))"
fi
NODE_RANK="${NODE_RANK:-0}"
require_non_negative_int NODE_RANK "$NODE_RANK"
((NODE_RANK < NODE_NUM)) || usage_error "NODE_RANK=$NODE_RANK must be below the number of machines, $NODE_NUM"
# msrun starts its scheduler wherever MASTER_ADDR is a local address; a loopback address on another
# machine would start a second, separate cluster there. (To try several "machines" on one host, give
# NODE_RANK>0 MASTER_ADDR=0.0.0.0, which connects to this host but is not one of its addresses.)
if [[ -z ${RANK_TABLE_FILE:-} ]] && ((NODE_RANK > 0)) && [[ $MASTER_ADDR =~ ^(127\.|localhost$|::1$) ]]; then
  usage_error "NODE_RANK=$NODE_RANK needs MASTER_ADDR, the address of the NODE_RANK=0 machine, not $MASTER_ADDR"
fi
if [[ -n ${RANK_TABLE_FILE:-} ]]; then
  [[ $DEVICE_TARGET == Ascend ]] || usage_error "RANK_TABLE_FILE is for Ascend only; unset it for DEVICE_TARGET=$DEVICE_TARGET"
  RANK_TABLE_FILE="$(abs_path "$RANK_TABLE_FILE")"
  require_file RANK_TABLE_FILE "$RANK_TABLE_FILE"
  export RANK_TABLE_FILE
fi
require_dir DATA_PATH "$DATA_PATH"
if [[ -n ${RANK_TABLE_FILE:-} ]]; then
  set_job_timeout TERM
else
  # msrun answers SIGINT by SIGKILLing every worker; JOB_TIMEOUT uses that to stop the whole job.
  set_job_timeout INT --foreground
fi
TRAIN_FLAGS=(--data_path "$DATA_PATH" --device_target "$DEVICE_TARGET" --run_distribute true "$@")
# RANK_SIZE: the process count that an original --device_num flag must match.
SETTINGS_OUTPUT="$(RANK_SIZE=$DEVICE_NUM check_settings train "${TRAIN_FLAGS[@]}")"
# The same settings with absolute paths, for ranks that start in a working folder of their own.
ABSOLUTE_PATH_FLAGS=()
while IFS= read -r line; do
  if [[ $line == --* ]]; then
    ABSOLUTE_PATH_FLAGS+=("$line")
  fi
done <<<"$SETTINGS_OUTPUT"

# ---- launch ----
make_log_dir train_distribute
FIRST_RANK=$((NODE_RANK * LOCAL_DEVICE_NUM))

# Classic Ascend launch: one process per device, watched until one fails or all succeed. As in MindSpore's
# rank-table samples, each rank starts in a working folder of its own, LOG_DIR/rank_N, so the files the
# framework writes into the working folder (kernel_meta/ compile caches, graph dumps) never collide.
run_with_rank_table() {
  local pids=() index code=0
  # Each rank leads its own process group (setsid), so stopping it stops its children too.
  stop_ranks() {
    local pid
    for pid in "${pids[@]}"; do
      kill -TERM -- "-$pid" 2>/dev/null || true
    done
  }
  trap 'stop_ranks; exit 130' INT
  trap 'stop_ranks; exit 143' TERM
  echo "rank table $RANK_TABLE_FILE: ranks $FIRST_RANK..$((FIRST_RANK + LOCAL_DEVICE_NUM - 1)) of $DEVICE_NUM on this machine"
  for ((index = 0; index < LOCAL_DEVICE_NUM; index++)); do
    mkdir -p -- "$LOG_DIR/rank_$((FIRST_RANK + index))"
    RANK_ID=$((FIRST_RANK + index)) DEVICE_ID=$index RANK_SIZE=$DEVICE_NUM \
      setsid "${JOB_TIMEOUT_PREFIX[@]}" env -C "$LOG_DIR/rank_$((FIRST_RANK + index))" \
      python "$REPO_ROOT/train.py" "${TRAIN_FLAGS[@]}" "${ABSOLUTE_PATH_FLAGS[@]}" --device_id "$index" \
      >"$LOG_DIR/worker_$((FIRST_RANK + index)).log" 2>&1 &
    pids+=("$!")
  done
  for ((index = 0; index < LOCAL_DEVICE_NUM; index++)); do
    wait -n || code=$?
    if ((code != 0)); then
      # The others would wait for the dead rank in their next collective: stop them now.
      echo "error: a rank exited with code $code; stopping the others" >&2
      stop_ranks
      wait || true
      break
    fi
  done
  trap - INT TERM
  return "$code"
}

# shellcheck disable=SC2317  # run by the traps of run_with_msrun
# worker_pids PID: the msrun workers (train.py processes with MS_ROLE=MS_WORKER) below PID; a worker's own
# children are skipped, and so is msrun's `tail -f` of a worker log (which inherits MS_ROLE too).
worker_pids() {
  local pending=("$1") pid child
  while ((${#pending[@]})); do
    pid="${pending[0]}"
    pending=("${pending[@]:1}")
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
      if tr '\0' '\n' <"/proc/$child/environ" 2>/dev/null | grep -qx 'MS_ROLE=MS_WORKER'; then
        if tr '\0' '\n' <"/proc/$child/cmdline" 2>/dev/null | grep -qx "$REPO_ROOT/train.py"; then
          echo "$child"
        fi
      else
        pending+=("$child")
      fi
    done
  done
}

# msrun: starts the scheduler (on NODE_RANK 0) and this machine's workers, kills them all when one
# fails, and returns non-zero then. It shows this machine's first rank's log on the console: msrun's help
# says --tail_worker_log is in [0, local_worker_num], but msrun 2.10 compares it with the global rank id
# (process_entity/_api.py, enable_tail_worker_log), so it gets FIRST_RANK (tests: three machines on one host).
run_with_msrun() {
  local msrun_args=(--worker_num="$DEVICE_NUM" --local_worker_num="$LOCAL_DEVICE_NUM"
    --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" --log_dir="$LOG_DIR" --join=True
    --cluster_time_out="$CLUSTER_TIMEOUT" --tail_worker_log="$FIRST_RANK")
  if ((NODE_NUM > 1)); then
    msrun_args+=(--node_rank="$NODE_RANK")
  fi
  echo "msrun: $LOCAL_DEVICE_NUM of $DEVICE_NUM ranks on this machine ($DEVICE_TARGET, master $MASTER_ADDR:$MASTER_PORT)"
  local signalled=0 code=0 msrun_pid watchdog=""
  # msrun answers SIGINT/SIGTERM with SIGKILL to its workers, which would lose everything since the
  # last checkpoint; so it runs in its own session (Ctrl+C in the terminal reaches only this script),
  # and a stop is delivered as SIGTERM to the workers, which save at the next step boundary and exit.
  # msrun then ends the job; after STOP_GRACE seconds (or a second signal) it is told to kill them.
  setsid "${JOB_TIMEOUT_PREFIX[@]}" msrun "${msrun_args[@]}" "$REPO_ROOT/train.py" "${TRAIN_FLAGS[@]}" &
  msrun_pid=$!
  # shellcheck disable=SC2317  # run by the traps below
  on_stop() {
    local workers=()
    if ((signalled == 0)); then
      signalled=$1
      mapfile -t workers < <(worker_pids "$msrun_pid")
    else
      echo "second stop signal: killing the job without waiting for a checkpoint" >&2
    fi
    if ((${#workers[@]})); then
      echo "stopping: SIGTERM to ${#workers[@]} ranks; rank 0 saves a checkpoint at its next step (up to" \
        "STOP_GRACE=$STOP_GRACE s; a second Ctrl+C kills the job at once)" >&2
      kill -TERM "${workers[@]}" 2>/dev/null || true
      (sleep "$STOP_GRACE" && kill -INT "$msrun_pid") 2>/dev/null & # quiet: no "Terminated" when it is ended
      watchdog=$!
    else
      kill -INT "$msrun_pid" 2>/dev/null || true
    fi
  }
  trap 'on_stop 130' INT
  trap 'on_stop 143' TERM
  while true; do
    code=0
    wait "$msrun_pid" || code=$?
    # wait also returns when a trap has run; go on waiting while the ranks save and stop.
    kill -0 "$msrun_pid" 2>/dev/null || break
  done
  trap - INT TERM
  if [[ -n $watchdog ]]; then
    pkill -P "$watchdog" 2>/dev/null || true # its sleep
    kill "$watchdog" 2>/dev/null || true
  fi
  if ((signalled)); then
    code=$signalled
  fi
  return "$code"
}

code=0
if [[ -n ${RANK_TABLE_FILE:-} ]]; then
  run_with_rank_table || code=$?
else
  run_with_msrun || code=$?
fi
report_exit "$code"
