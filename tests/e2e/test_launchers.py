"""The shell launchers in scripts/: syntax, argument checks, and how they drive msrun or the classic
Ascend launch. msrun and the training process are fakes here (fast); tests/test_distributed_train.py
runs the real thing on CPU workers."""
import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.launchers import SCRIPTS_DIR, fake_tool_env, run_script
from tests.helpers.processes import default_sigint

SCRIPTS = sorted(glob.glob(os.path.join(SCRIPTS_DIR, "*.sh")))
LAUNCHERS = ["run_distribute_train.sh", "run_distribute_train_gpu.sh", "run_standalone_train.sh", "run_eval.sh"]
# The original model zoo's launcher names and argument orders (thin wrappers over the launchers above).
ORIGINAL_LAUNCHERS = ["run_distribute_train_ascend.sh", "run_standalone_train_ascend.sh", "run_distribute_train_gpu.sh",
                      "run_standalone_train_gpu.sh", "run_eval_ascend.sh", "run_eval_gpu.sh"]
# A fake msrun that records its arguments and a few environment variables, then exits FAKE_EXIT.
RECORDING_MSRUN = ('printf "%s\\n" "$@" > "$FAKE_RECORD"; echo "RANK_TABLE_FILE=${RANK_TABLE_FILE:-}" >> "$FAKE_RECORD"\n'
                   'exit "${FAKE_EXIT:-0}"')


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("cifar")), per_train_file=4, test_count=4)


@pytest.fixture
def fake_env(tmp_path):
    """Fakes for msrun and python that leave a marker file if they are ever started."""
    marker = tmp_path / "started"
    env = fake_tool_env(str(tmp_path / "bin"), msrun=f'touch "{marker}"; ' + RECORDING_MSRUN,
                        python=f'touch "{marker}"')
    env.update(FAKE_RECORD=str(tmp_path / "record"), LOG_DIR=str(tmp_path / "logs"))
    return env, marker


def test_scripts_exist_and_pass_bash_n():
    assert {os.path.basename(path) for path in SCRIPTS} >= set(LAUNCHERS) | set(ORIGINAL_LAUNCHERS) | {"common.sh"}
    for path in SCRIPTS:
        result = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
        assert result.returncode == 0, f"{path}: {result.stderr}"


def test_scripts_pass_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed; install it with `apt-get install shellcheck` (.ci/run does)")
    result = subprocess.run(["shellcheck", "-x", *SCRIPTS], capture_output=True, text=True, cwd=SCRIPTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


BAD_DISTRIBUTED_INPUT = [
    # (arguments after the script name, extra environment, expected text in the error)
    ([], {}, "DATA_PATH is missing"),
    (["{missing}", "2"], {}, "does not exist"),
    (["{data}", "0"], {}, "DEVICE_NUM must be a positive integer, got '0'"),
    (["{data}", "x"], {}, "DEVICE_NUM must be a positive integer, got 'x'"),
    (["{data}", "-2"], {}, "DEVICE_NUM must be a positive integer, got '-2'"),
    (["{data}", "2.5"], {}, "DEVICE_NUM must be a positive integer, got '2.5'"),
    (["{data}", "8"], {"RANK_TABLE_FILE": "{missing}"}, "RANK_TABLE_FILE"),
    (["{data}", "2"], {"RANK_TABLE_FILE": "{data}", "DEVICE_TARGET": "CPU"}, "RANK_TABLE_FILE is for Ascend only"),
    (["{data}", "2"], {"DEVICE_TARGET": "cpu"}, "DEVICE_TARGET must be Ascend, GPU or CPU"),
    (["{data}", "2"], {"LOCAL_DEVICE_NUM": "4"}, "LOCAL_DEVICE_NUM=4 is more than DEVICE_NUM=2"),
    (["{data}", "1000"], {}, "1000 ranks on this machine (LOCAL_DEVICE_NUM, default DEVICE_NUM) is more than any"),
    (["{data}", "65"], {"DEVICE_TARGET": "CPU"}, "is more than any CPU machine has; at most 64"),
    (["{data}", "4"], {"LOCAL_DEVICE_NUM": "3", "NODE_RANK": "0"}, "not a multiple of LOCAL_DEVICE_NUM=3"),
    (["{data}", "4"], {"LOCAL_DEVICE_NUM": "2"}, "NODE_RANK is not set"),
    (["{data}", "4"], {"LOCAL_DEVICE_NUM": "2", "NODE_RANK": "2"}, "NODE_RANK=2 must be below"),
    (["{data}", "4"], {"LOCAL_DEVICE_NUM": "2", "NODE_RANK": "1"}, "NODE_RANK=1 needs MASTER_ADDR"),
    (["{data}", "4"], {"LOCAL_DEVICE_NUM": "2", "NODE_RANK": "1", "MASTER_ADDR": "localhost"}, "not localhost"),
    (["{data}", "2"], {"MASTER_PORT": "80"}, "MASTER_PORT must be a port number"),
    (["{data}", "2"], {"JOB_TIMEOUT": "1h"}, "JOB_TIMEOUT must be 0 or a positive integer"),
    (["{data}", "2"], {"CLUSTER_TIMEOUT": "0"}, "CLUSTER_TIMEOUT must be a positive integer"),
    (["{empty}", "2"], {}, "is missing data_batch_1.bin"),
    (["{data}", "2", "--epoch_sise", "3"], {}, "unrecognized arguments: --epoch_sise 3"),
    (["{data}", "2", "--epoch_size", "three"], {}, "bad value for epoch_size"),
]


# The GPU launcher sets DEVICE_TARGET itself, so the cases that set it are for the main launcher only.
@pytest.mark.parametrize("script, args, env, message",
                         [("run_distribute_train.sh", *case) for case in BAD_DISTRIBUTED_INPUT] +
                         [("run_distribute_train_gpu.sh", *case) for case in BAD_DISTRIBUTED_INPUT
                          if "DEVICE_TARGET" not in case[1]])
def test_bad_input_prints_usage_and_starts_nothing(script, args, env, message, data_root, fake_env, tmp_path):
    paths = {"data": data_root, "missing": str(tmp_path / "nope"), "empty": str(tmp_path)}
    fill = lambda text: text.format(**paths)  # noqa: E731
    tool_env, marker = fake_env
    result = run_script(script, [fill(a) for a in args], env={**tool_env, **{k: fill(v) for k, v in env.items()}})
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr and "Usage:" in result.stderr, result.stderr
    assert not marker.exists() and not os.path.exists(tool_env["LOG_DIR"])


@pytest.mark.parametrize("script, args, message", [
    ("run_standalone_train.sh", [], "DATA_PATH is missing"),
    ("run_standalone_train.sh", ["{missing}"], "does not exist"),
    ("run_standalone_train.sh", ["{data}", "one"], "DEVICE_ID must be 0 or a positive integer"),
    ("run_eval.sh", ["{data}"], "DATA_PATH and CHECKPOINT_PATH are required"),
    ("run_eval.sh", ["{data}", "{missing}"], "CHECKPOINT_PATH"),
    ("run_eval.sh", ["{missing}", "{data}"], "DATA_PATH"),
    ("run_eval.sh", ["{data}", "{data}", "-1"], "DEVICE_ID must be 0 or a positive integer"),
])
def test_single_device_launchers_check_their_arguments(script, args, message, data_root, fake_env, tmp_path):
    paths = {"data": data_root, "missing": str(tmp_path / "nope")}
    tool_env, marker = fake_env
    result = run_script(script, [a.format(**paths) for a in args], env=tool_env)
    assert result.returncode == 1 and message in result.stderr and "Usage:" in result.stderr, result.stderr
    assert not marker.exists() and not os.path.exists(tool_env["LOG_DIR"])


def read_record(env) -> list[str]:
    with open(env["FAKE_RECORD"], encoding="utf-8") as handle:
        return handle.read().splitlines()


def test_msrun_gets_absolute_paths_and_the_cluster_settings(data_root, fake_env, tmp_path):
    tool_env, _ = fake_env
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    relative_data = os.path.relpath(data_root, workdir)
    env = {**tool_env, "DEVICE_TARGET": "CPU", "LOCAL_DEVICE_NUM": "2", "NODE_RANK": "1",
           "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29555", "CLUSTER_TIMEOUT": "30", "LOG_DIR": "logs/run"}
    result = run_script("run_distribute_train.sh", [relative_data, "4", "--epoch_size", "1"], env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    record = read_record(tool_env)
    log_dir = str(workdir / "logs" / "run")
    assert record[:9] == ["--worker_num=4", "--local_worker_num=2", "--master_addr=10.0.0.1",
                          "--master_port=29555", f"--log_dir={log_dir}", "--join=True", "--cluster_time_out=30",
                          "--tail_worker_log=2", "--node_rank=1"]
    assert record[9] == os.path.join(os.path.dirname(SCRIPTS_DIR), "train.py")
    assert record[10:-1] == ["--data_path", os.path.realpath(data_root), "--device_target", "CPU",
                             "--run_distribute", "true", "--epoch_size", "1"]
    assert f"logs: {log_dir}" in result.stdout


def test_defaults_are_eight_ascend_ranks_on_one_machine(data_root, fake_env):
    tool_env, _ = fake_env
    result = run_script("run_distribute_train.sh", [data_root, "--epoch_size", "1"], env=tool_env)
    assert result.returncode == 0, result.stderr
    record = read_record(tool_env)
    assert "--worker_num=8" in record and "--local_worker_num=8" in record and "--master_port=8118" in record
    assert not any(arg.startswith("--node_rank") for arg in record)
    assert record[record.index("--device_target") + 1] == "Ascend" and record[-2] == "1"


def test_gpu_launcher_keeps_its_name_and_sets_gpu(data_root, fake_env):
    tool_env, _ = fake_env
    result = run_script("run_distribute_train_gpu.sh", [data_root, "4"], env={**tool_env, "DEVICE_TARGET": "CPU"})
    assert result.returncode == 0, result.stderr
    record = read_record(tool_env)
    assert record[record.index("--device_target") + 1] == "GPU" and "--worker_num=4" in record


def test_exit_code_of_msrun_is_the_exit_code_of_the_launcher(data_root, fake_env):
    tool_env, _ = fake_env
    result = run_script("run_distribute_train.sh", [data_root, "2"], env={**tool_env, "FAKE_EXIT": "7"})
    assert result.returncode == 7
    assert "failed with exit code 7" in result.stderr and tool_env["LOG_DIR"] in result.stderr


def msrun_stopped_by_sigint(started, interrupted) -> str:
    """A fake msrun that, like the real one, handles SIGINT (stop the workers, exit 0) in Python.

    Python, because a background bash script cannot trap a SIGINT that it inherited as ignored.
    """
    program = started.parent / "fake_msrun.py"
    program.write_text(f"import pathlib, signal, sys, time\n"
                       f"def stop(*_):\n    pathlib.Path({str(interrupted)!r}).touch()\n    sys.exit(0)\n"
                       f"signal.signal(signal.SIGINT, stop)\n"
                       f"pathlib.Path({str(started)!r}).touch()\n"
                       f"time.sleep(300)\n")
    return f'exec "{sys.executable}" "{program}"'


def test_job_timeout_interrupts_msrun_and_exits_124(data_root, tmp_path):
    # msrun stops all its workers on SIGINT and then exits 0; the launcher must still say "timed out".
    interrupted = tmp_path / "interrupted"
    env = fake_tool_env(str(tmp_path / "bin"), msrun=msrun_stopped_by_sigint(tmp_path / "started", interrupted))
    env.update(JOB_TIMEOUT="1", LOG_DIR=str(tmp_path / "logs"))
    result = run_script("run_distribute_train.sh", [data_root, "2"], env=env, timeout=60)
    assert result.returncode == 124, result.stderr
    assert interrupted.exists() and "JOB_TIMEOUT=1" in result.stderr


# ---- the classic Ascend launch with a rank table: a fake train process per rank ----
# Each fake rank records the pid of a child process, to check that stopping a rank stops its children.
FAKE_RANK = """echo "RANK_ID=$RANK_ID DEVICE_ID=$DEVICE_ID RANK_SIZE=$RANK_SIZE RANK_TABLE_FILE=$RANK_TABLE_FILE"
echo "ARGS $*"
echo "PWD $(pwd)"
sleep "${FAKE_SECONDS:-0}" &
echo $! > "$FAKE_PIDS/$RANK_ID.tmp" && mv "$FAKE_PIDS/$RANK_ID.tmp" "$FAKE_PIDS/$RANK_ID"
if [ "$RANK_ID" = "${FAIL_RANK:-}" ]; then
  while [ "$(ls "$FAKE_PIDS" | grep -cv tmp)" -lt "$RANK_SIZE" ]; do sleep 0.1; done
  exit 3
fi
wait
"""


@pytest.fixture
def rank_table_env(tmp_path):
    table = tmp_path / "rank_table_8pcs.json"
    table.write_text("{}")  # the launcher only checks that the file exists; HCCL reads it
    pids = tmp_path / "pids"
    pids.mkdir()
    env = fake_tool_env(str(tmp_path / "bin"), python=FAKE_RANK)
    env.update(RANK_TABLE_FILE=str(table), FAKE_PIDS=str(pids), LOG_DIR=str(tmp_path / "logs"),
               DEVICE_TARGET="Ascend")
    return env


def test_rank_table_launch_starts_one_process_per_device(data_root, rank_table_env):
    result = run_script("run_distribute_train.sh", [data_root, "4", "--epoch_size", "2"], env=rank_table_env)
    assert result.returncode == 0, result.stderr
    for rank in range(4):
        with open(os.path.join(rank_table_env["LOG_DIR"], f"worker_{rank}.log"), encoding="utf-8") as handle:
            env_line, args_line, pwd_line = handle.read().splitlines()
        assert env_line == f"RANK_ID={rank} DEVICE_ID={rank} RANK_SIZE=4 RANK_TABLE_FILE={rank_table_env['RANK_TABLE_FILE']}"
        assert "--run_distribute true" in args_line and f"--device_id {rank}" in args_line
        assert "--device_target Ascend" in args_line and "--epoch_size 2" in args_line
        # each rank in its own working folder (compile caches must not collide)
        assert pwd_line == f"PWD {os.path.join(rank_table_env['LOG_DIR'], f'rank_{rank}')}"


def test_rank_table_ranks_get_the_callers_relative_paths_as_absolute_ones(data_root, rank_table_env, tmp_path):
    caller = tmp_path / "caller"
    caller.mkdir()
    (caller / "my.yaml").write_text("epoch_size: 3\n")
    result = run_script("run_distribute_train.sh", [data_root, "2", "--config_path", "my.yaml", "--resume", "auto"],
                        env=rank_table_env, cwd=str(caller))
    assert result.returncode == 0, result.stderr
    with open(os.path.join(rank_table_env["LOG_DIR"], "worker_1.log"), encoding="utf-8") as handle:
        args_line = handle.read().splitlines()[1]
    # the default output_path ./output and the relative config file resolve in the caller's folder
    assert f"--output_path={caller / 'output'}" in args_line and f"--config_path={caller / 'my.yaml'}" in args_line
    assert "--resume=" not in args_line  # "auto" is not a path


def test_rank_table_on_the_second_of_two_machines_numbers_ranks_after_the_first(data_root, rank_table_env):
    env = {**rank_table_env, "LOCAL_DEVICE_NUM": "2", "NODE_RANK": "1"}
    result = run_script("run_distribute_train.sh", [data_root, "4"], env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(env["LOG_DIR"])) == ["rank_2", "rank_3", "worker_2.log", "worker_3.log"]
    with open(os.path.join(env["LOG_DIR"], "worker_3.log"), encoding="utf-8") as handle:
        assert handle.readline().startswith("RANK_ID=3 DEVICE_ID=1 RANK_SIZE=4 ")


def recorded_pids(env) -> list[int]:
    """The pids the fake ranks recorded (each file is complete: it is renamed into place)."""
    folder = env["FAKE_PIDS"]
    return [int(open(os.path.join(folder, name)).read()) for name in os.listdir(folder) if not name.endswith(".tmp")]


def pid_running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_rank_table_launch_stops_all_ranks_when_one_fails(data_root, rank_table_env):
    env = {**rank_table_env, "FAIL_RANK": "1", "FAKE_SECONDS": "300"}
    result = run_script("run_distribute_train.sh", [data_root, "3"], env=env, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "a rank exited with code 3" in result.stderr
    pids = recorded_pids(env)
    assert len(pids) == 3
    for _ in range(50):  # SIGTERM is asynchronous: give the children a moment to go
        if not any(pid_running(pid) for pid in pids):
            break
        time.sleep(0.1)
    assert not any(pid_running(pid) for pid in pids)


def test_rank_table_launch_honours_job_timeout(data_root, rank_table_env):
    env = {**rank_table_env, "FAKE_SECONDS": "300", "JOB_TIMEOUT": "1"}
    result = run_script("run_distribute_train.sh", [data_root, "2"], env=env, timeout=60)
    assert result.returncode == 124, result.stderr


def test_eval_settings_are_checked_as_eval_py_reads_them(data_root, tmp_path):
    # The test split may live elsewhere (--eval_data_path); the check must follow the flags.
    env = fake_tool_env(str(tmp_path / "bin"), python='echo "ARGS $*"')
    env.update(LOG_DIR=str(tmp_path / "logs"), DEVICE_TARGET="CPU")
    elsewhere = tmp_path / "train_only"
    elsewhere.mkdir()
    result = run_script("run_eval.sh", [str(elsewhere), data_root], env=env)
    assert result.returncode == 1 and "missing test_batch.bin" in result.stderr, result.stderr
    result = run_script("run_eval.sh", [str(elsewhere), data_root, "--eval_data_path", data_root], env=env)
    assert result.returncode == 0, result.stderr


def test_standalone_and_eval_run_in_the_foreground_with_a_log(data_root, tmp_path):
    env = fake_tool_env(str(tmp_path / "bin"), python='echo "ARGS $*"; exit "${FAKE_EXIT:-0}"')
    env.update(LOG_DIR=str(tmp_path / "train_logs"), DEVICE_TARGET="CPU")
    result = run_script("run_standalone_train.sh", [data_root, "3", "--epoch_size", "1"], env=env)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "train_logs" / "train.log", encoding="utf-8") as handle:
        logged = handle.read()
    assert logged.endswith(f"--data_path {os.path.realpath(data_root)} --device_target CPU --device_id 3 "
                           "--epoch_size 1\n") and logged in result.stdout
    env.update(LOG_DIR=str(tmp_path / "eval_logs"), FAKE_EXIT="5")
    result = run_script("run_eval.sh", [data_root, data_root], env=env)
    assert result.returncode == 5
    with open(tmp_path / "eval_logs" / "eval.log", encoding="utf-8") as handle:
        assert f"--checkpoint_path {os.path.realpath(data_root)} --device_target CPU --device_id 0" in handle.read()


@pytest.mark.parametrize("script, args", [("run_standalone_train.sh", ["{data}"]),
                                          ("run_eval.sh", ["{data}", "{data}"])])
@pytest.mark.parametrize("code", [1, 3])
def test_a_failing_job_fails_the_launcher_with_its_exit_code(script, args, code, data_root, tmp_path):
    env = fake_tool_env(str(tmp_path / "bin"), python=f'echo "ARGS $*"; exit {code}')
    env.update(LOG_DIR=str(tmp_path / "logs"), DEVICE_TARGET="CPU")
    result = run_script(script, [arg.format(data=data_root) for arg in args], env=env)
    assert result.returncode == code, result.stdout + result.stderr
    assert "ARGS " in result.stdout


def interrupt_like_ctrl_c(args: list[str], env: dict[str, str], ready) -> subprocess.CompletedProcess:
    """Start a launcher in its own process group, wait until `ready()`, then SIGINT the group."""
    launcher = subprocess.Popen(["bash", os.path.join(SCRIPTS_DIR, "run_distribute_train.sh"), *args],
                                env=dict(os.environ, **env), start_new_session=True, preexec_fn=default_sigint,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        if ready():
            break
        time.sleep(0.1)
    os.killpg(launcher.pid, signal.SIGINT)
    try:
        stdout, stderr = launcher.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)  # leave nothing running behind a failed test
        raise
    return subprocess.CompletedProcess(launcher.args, launcher.returncode, stdout, stderr)


def test_ctrl_c_stops_msrun_and_exits_130(data_root, tmp_path):
    # msrun stops its workers on SIGINT and exits 0; the launcher must not report success.
    started, interrupted = tmp_path / "started", tmp_path / "interrupted"
    env = fake_tool_env(str(tmp_path / "bin"), msrun=msrun_stopped_by_sigint(started, interrupted))
    env.update(LOG_DIR=str(tmp_path / "logs"))
    launcher = interrupt_like_ctrl_c([data_root, "2"], env, started.exists)
    assert launcher.returncode == 130 and interrupted.exists()
    assert "error: interrupted (exit code 130)" in launcher.stderr


def test_sigterm_stops_msrun_through_sigint_and_exits_143(data_root, tmp_path):
    # A batch system cancels a job with SIGTERM; msrun itself would die on it and leave its workers.
    started, interrupted = tmp_path / "started", tmp_path / "interrupted"
    env = fake_tool_env(str(tmp_path / "bin"), msrun=msrun_stopped_by_sigint(started, interrupted))
    env.update(LOG_DIR=str(tmp_path / "logs"))
    launcher = subprocess.Popen(["bash", os.path.join(SCRIPTS_DIR, "run_distribute_train.sh"), data_root, "2"],
                                env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=default_sigint)
    for _ in range(300):
        if started.exists():
            break
        time.sleep(0.1)
    launcher.terminate()
    launcher.communicate(timeout=60)
    assert launcher.returncode == 143 and interrupted.exists()


def test_ctrl_c_stops_every_rank_of_a_rank_table_launch(data_root, rank_table_env):
    env = {**rank_table_env, "FAKE_SECONDS": "300"}
    launcher = interrupt_like_ctrl_c([data_root, "3"], env, lambda: len(recorded_pids(env)) == 3)
    assert launcher.returncode == 130
    pids = recorded_pids(env)
    for _ in range(50):
        if not any(pid_running(pid) for pid in pids):
            break
        time.sleep(0.1)
    assert len(pids) == 3 and not any(pid_running(pid) for pid in pids)


# ---- the original model zoo's six launcher names, with its argument orders ----
def test_original_gpu_launcher_takes_visible_devices_then_device_num(data_root, tmp_path):
    record = tmp_path / "record"
    env = fake_tool_env(str(tmp_path / "bin"),
                        msrun=f'printf "%s\\n" "$@" > "{record}"; echo "CUDA=${{CUDA_VISIBLE_DEVICES:-}}" >> "{record}"')
    env.update(LOG_DIR=str(tmp_path / "logs"), DEVICE_TARGET="CPU")
    result = run_script("run_distribute_train_gpu.sh", [data_root, "0,1,2,3", "4", "--epoch_size", "1"], env=env)
    assert result.returncode == 0, result.stderr
    lines = record.read_text().splitlines()
    assert "--worker_num=4" in lines and lines[-1] == "CUDA=0,1,2,3"
    assert lines[lines.index("--device_target") + 1] == "GPU" and lines[-3:-1] == ["--epoch_size", "1"]
    # One listed GPU and DEVICE_NUM 1 is the original form too; a list alone counts its devices.
    for args, ranks, visible in (([data_root, "5", "1"], "1", "5"), ([data_root, "2,3"], "2", "2,3")):
        assert run_script("run_distribute_train_gpu.sh", args, env=env).returncode == 0
        lines = record.read_text().splitlines()
        assert f"--worker_num={ranks}" in lines and lines[-1] == f"CUDA={visible}", lines


def test_original_gpu_launcher_refuses_more_ranks_than_listed_gpus(data_root, fake_env):
    tool_env, marker = fake_env
    result = run_script("run_distribute_train_gpu.sh", [data_root, "0,1", "4"], env=tool_env)
    assert result.returncode == 1 and "DEVICE_NUM=4" in result.stderr and "lists 2 GPUs" in result.stderr
    assert not marker.exists()


def test_original_ascend_launcher_takes_the_rank_table_as_an_argument(data_root, rank_table_env):
    env = dict(rank_table_env)
    table = env.pop("RANK_TABLE_FILE")
    env["DEVICE_TARGET"] = "CPU"  # the wrapper sets Ascend itself
    result = run_script("run_distribute_train_ascend.sh", [data_root, table, "2", "--epoch_size", "2"],
                        env={k: v for k, v in env.items()})
    assert result.returncode == 0, result.stderr
    for rank in range(2):
        with open(os.path.join(env["LOG_DIR"], f"worker_{rank}.log"), encoding="utf-8") as handle:
            env_line, args_line, _ = handle.read().splitlines()  # the third line is the rank's working folder
        assert env_line == f"RANK_ID={rank} DEVICE_ID={rank} RANK_SIZE=2 RANK_TABLE_FILE={table}"
        assert "--device_target Ascend" in args_line and "--epoch_size 2" in args_line
        assert f"--device_id {rank}" in args_line
    result = run_script("run_distribute_train_ascend.sh", [data_root, table], env=env)
    assert result.returncode == 1 and "DATA_URL, RANK_TABLE_FILE and DEVICE_NUM are required" in result.stderr


@pytest.mark.parametrize("script, target, extra", [
    ("run_standalone_train_ascend.sh", "Ascend", []), ("run_standalone_train_gpu.sh", "GPU", []),
    ("run_eval_ascend.sh", "Ascend", ["{data}"]), ("run_eval_gpu.sh", "GPU", ["{data}"])])
def test_original_single_device_launchers_set_their_device(script, target, extra, data_root, tmp_path):
    env = fake_tool_env(str(tmp_path / "bin"), python='echo "ARGS $*"')
    env.update(LOG_DIR=str(tmp_path / "logs"), DEVICE_TARGET="CPU")
    result = run_script(script, [data_root, *[e.format(data=data_root) for e in extra], "3"], env=env)
    assert result.returncode == 0, result.stderr
    assert f"--device_target {target} --device_id 3" in result.stdout, result.stdout
