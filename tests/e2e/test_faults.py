"""No lost work: real train.py/eval.py processes on the tiny network, hurt on purpose.

kill -9 inside an epoch and inside a save, a corrupted newest checkpoint, a full disk, a NaN loss
and SIGTERM. One uninterrupted-then-resumed run (the `resumed_run` fixture) provides the
checkpoints that the other tests start from, so each test pays for one or two short processes.
"""
import csv
import os
import re
import resource
import shutil
import signal
import subprocess
import time
import warnings

import pytest

from src.training.build import learning_rates
from src.utils.checkpoint_file import list_checkpoints, read_sidecar, sidecar_path
from src.utils.config import load_config
from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.faults import fault_env
from tests.helpers.processes import default_sigint, run_entry, start_entry
from tests.helpers.tiny_runs import CKPT_1, CKPT_2, CKPT_3, MODEL, TINY, assert_all_load, copy_checkpoint, train_args
from tests.helpers.tiny_runs import TINY_STEPS as STEPS


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("data")), per_train_file=8, test_count=8)


def final_names(folder) -> list[str]:
    """The checkpoints under their final names (what resume and eval.py would read)."""
    return [os.path.basename(path) for path in list_checkpoints(str(folder))]


def the_one_error_line(stderr: str) -> str:
    """stderr must be exactly one `error: ...` line (no traceback, no MindSpore log lines)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def resumed_run(data, tmp_path_factory):
    """kill -9 in the middle of epoch 2 of 3, then `--resume auto`. Returns (folder, resume output)."""
    out = tmp_path_factory.mktemp("killed")
    run = start_entry("train.py", train_args(data, out, "--epoch_size", "3"))
    run.wait_for(f"epoch 2/3 step 3/{STEPS}")
    run.proc.kill()
    assert run.finish() == -signal.SIGKILL
    assert final_names(out) == [CKPT_1], "the kill was meant to land inside epoch 2"
    resumed = run_entry("train.py", train_args(data, out, "--epoch_size", "3", "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    return out, resumed.stdout


def test_kill_9_in_epoch_2_then_resume_auto_finishes_all_epochs(resumed_run):
    out, output = resumed_run
    assert f"resumed {os.path.join(out, CKPT_1)}: epoch 1, global step {STEPS}" in output
    assert f"done: 3 epochs, {3 * STEPS} steps" in output
    assert final_names(out) == [CKPT_1, CKPT_2, CKPT_3]
    sidecars = assert_all_load(out)
    assert [(m["epoch"], m["global_step"]) for m in sidecars] == [(1, STEPS), (2, 2 * STEPS), (3, 3 * STEPS)]
    with open(os.path.join(out, "metrics.csv"), encoding="utf-8") as handle:
        assert [row.split(",")[0] for row in handle.read().split()[1:]] == ["1", "2", "3"]


def test_kill_9_inside_a_save_keeps_the_previous_checkpoint(data, tmp_path):
    out = tmp_path / "out"
    # The 2nd save (epoch 2) stops after its temporary file is complete, before the rename.
    run = start_entry("train.py", train_args(data, out, "--epoch_size", "2"), env=fault_env(pause_in_save=2))
    run.wait_for("fault: paused in save of")
    run.proc.kill()
    assert run.finish() == -signal.SIGKILL
    leftovers = [name for name in os.listdir(out) if name.startswith(".tmp-")]
    assert leftovers, "the kill was meant to land inside the save window"
    assert final_names(out) == [CKPT_1]
    assert not os.path.exists(sidecar_path(str(out / CKPT_2)))
    assert [m["epoch"] for m in assert_all_load(out)] == [1]
    # The next run clears the unfinished save and continues from epoch 1.
    resumed = run_entry("train.py", train_args(data, out, "--epoch_size", "2", "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"removed {leftovers[0]}" in resumed.stdout and f"resumed {out / CKPT_1}" in resumed.stdout
    assert not [name for name in os.listdir(out) if name.startswith(".tmp-")]
    assert [m["epoch"] for m in assert_all_load(out)] == [1, 2]


def test_kill_9_right_after_a_save_loses_no_metrics_row(data, tmp_path):
    out = tmp_path / "out"
    run = start_entry("train.py", train_args(data, out, "--epoch_size", "2"),
                      env={**fault_env(), "FAULT_PAUSE_AFTER_SAVE": "1"})
    run.wait_for("fault: paused after save of")
    run.proc.kill()
    assert run.finish() == -signal.SIGKILL
    resumed = run_entry("train.py", train_args(data, out, "--epoch_size", "2", "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with open(out / "metrics.csv", encoding="utf-8") as handle:
        assert [row.split(",")[:2] for row in handle.read().split()[1:]] == [["1", str(STEPS)], ["2", str(2 * STEPS)]]


def test_truncated_newest_checkpoint_is_named_and_resume_falls_back(resumed_run, data, tmp_path):
    # (Flipped bytes are caught the same way; tests/test_fuzz_checkpoint.py covers both in-process.)
    source, _ = resumed_run
    out = tmp_path / "out"
    shutil.copytree(source, out)
    newest = out / CKPT_3
    os.chmod(newest, 0o600)  # MindSpore leaves checkpoints read-only
    os.truncate(newest, os.path.getsize(newest) * 2 // 3)
    evaluated = run_entry("eval.py", [*MODEL, "--eval_batch_size", "4", "--data_path", data,
                                      "--checkpoint_path", str(out)])
    assert evaluated.returncode == 1
    assert f"checkpoint {newest} is corrupt or truncated" in evaluated.stdout + evaluated.stderr
    assert f"could not be evaluated: {CKPT_3}" in evaluated.stdout
    assert f"{CKPT_2}: top1" in evaluated.stdout
    resumed = run_entry("train.py", train_args(data, out, "--epoch_size", "3", "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"warning: skipping {newest}" in resumed.stderr
    assert f"resumed {out / CKPT_2}: epoch 2" in resumed.stdout
    assert [m["epoch"] for m in assert_all_load(out)] == [1, 2, 3]  # epoch 3 trained again, file replaced


def _mount_tmpfs(folder, size_bytes: int) -> bool:
    folder.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(folder)],
                            capture_output=True, text=True)
    return result.returncode == 0


def test_disk_full_stops_with_one_line_and_loses_nothing(resumed_run, data, tmp_path):
    """A real full disk: a tmpfs that holds epoch 1's checkpoint but not epoch 2's (root only). Where
    mounting is not permitted, RLIMIT_FSIZE makes the kernel refuse the big write instead (EFBIG)."""
    source, _ = resumed_run
    checkpoint_size = os.path.getsize(os.path.join(source, CKPT_1))
    out = tmp_path / "small_disk"
    mounted = _mount_tmpfs(out, checkpoint_size + checkpoint_size // 2)
    limit = None
    if not mounted:
        warnings.warn("mounting a tmpfs is not permitted here; simulating the full disk with RLIMIT_FSIZE")
        limit = checkpoint_size // 2
    try:
        copy_checkpoint(source, CKPT_1, out)

        def limit_file_size():
            default_sigint()
            if limit is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        result = run_entry("train.py", train_args(data, out, "--epoch_size", "2", "--resume", "auto"),
                           preexec_fn=limit_file_size)
        assert result.returncode == 1, result.stdout + result.stderr
        error = the_one_error_line(result.stderr)
        expected = "No space left on device" if mounted else "File too large"
        assert f"could not write checkpoint {out / CKPT_2}" in error and expected in error, error
        assert sorted(os.listdir(out)) == sorted([CKPT_1, CKPT_1 + ".json", "config.yaml", "metrics.csv"])
        assert [m["epoch"] for m in assert_all_load(out)] == [1]
    finally:
        if mounted:
            subprocess.run(["umount", str(out)], check=True)


def _diverge_from_epoch_1(resumed_run, data, out, *extra: str, env: dict[str, str] | None = None):
    """Resume a copy of epoch 1's checkpoint for epoch 2 with `extra` flags; return the failed run's error."""
    source, _ = resumed_run
    copy_checkpoint(source, CKPT_1, out)
    result = run_entry("train.py", train_args(data, out, "--epoch_size", "2", "--resume", "auto", *extra), env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    error = the_one_error_line(result.stderr)
    assert f"the last good checkpoint is {out / CKPT_1}" in error
    assert final_names(out) == [CKPT_1]
    assert [m["epoch"] for m in assert_all_load(out)] == [1]
    return error


@pytest.mark.parametrize("sink_size, where", [("auto", "step [2-4]"), ("5", "steps 1-5")])
def test_nan_loss_with_a_fixed_loss_scale_stops_and_keeps_the_last_good_checkpoint(resumed_run, data, tmp_path,
                                                                                 sink_size, where):
    # A learning rate of 1e30 (a fault: --lr_max refuses it) makes the weights explode after one step, as
    # real divergence does; with several steps per sink the run stops at the end of the sink that holds the
    # first NaN loss.
    error = _diverge_from_epoch_1(resumed_run, data, tmp_path / "out", "--sink_size", sink_size,
                                  env=fault_env(learning_rate=1e30))
    assert re.search(rf"the loss became (nan|inf) at epoch 2 {where}/{STEPS}; the weights are broken", error), error


def test_nan_weights_under_a_finite_loss_are_never_saved(resumed_run, data, tmp_path):
    # A NaN batch turns the first conv's weights into NaN; on the CPU the ReLU after them turns NaN into 0,
    # so the loss stays finite. The check before the save still refuses the broken weights.
    error = _diverge_from_epoch_1(resumed_run, data, tmp_path / "out", env=fault_env(nan_at="2:3"))
    assert f"holds NaN/inf at epoch 2 step {STEPS}/{STEPS} although the loss stayed finite" in error, error


@pytest.mark.parametrize("sink_size", ["auto", "5"])
def test_nan_batch_with_a_dynamic_loss_scale_is_skipped_and_counted(data, tmp_path, sink_size):
    out = tmp_path / "out"
    result = run_entry("train.py", train_args(data, out, "--epoch_size", "1", "--loss_scale_type", "dynamic",
                                              "--sink_size", sink_size), env=fault_env(nan_at="1:3"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"epoch 1: skipped 1 of {STEPS} steps whose gradients overflowed (not applied); loss scale now 512" \
        in result.stdout
    # The skipped step moved neither the optimizer nor the BatchNorm statistics: all saved values are finite.
    sidecars = assert_all_load(out)
    assert [(m["epoch"], m["global_step"], m["loss_scale"]) for m in sidecars] == [(1, STEPS - 1, 512.0)]
    rows = list(csv.DictReader(open(out / "metrics.csv", encoding="utf-8")))
    assert [(row["skipped"], row["loss_scale"]) for row in rows] == [("1", "512")]


def _interrupted(run) -> list[str]:
    """The run's lines after an interrupt: one error line at the end, no traceback or MindSpore dump."""
    assert run.finish() == 128 + signal.SIGINT, run.output
    assert not re.search(r"Traceback|Fatal Python error|\[(ERROR|CRITICAL)\]", run.output), run.output
    errors = [line for line in run.lines if line.startswith("error: ")]
    assert len(errors) == 1 and run.lines[-1] == errors[0], run.output
    return errors


@pytest.mark.parametrize("moment", ["start-up", "compile", "mid-epoch"])
def test_ctrl_c_at_any_moment_stops_with_130_and_one_line(data, tmp_path, moment):
    out = tmp_path / "out"
    run = start_entry("train.py", train_args(data, out, "--epoch_size", "1"), env=fault_env(step_delay=0.3))
    if moment == "start-up":
        time.sleep(1.0)  # MindSpore is loading
    else:
        run.wait_for("training sknet_tiny" if moment == "compile" else f"epoch 1/1 step 2/{STEPS}")
    run.proc.send_signal(signal.SIGINT)
    [error] = _interrupted(run)
    if moment == "start-up":
        assert error == "error: stopped by SIGINT during start-up, before training; nothing was saved"
        assert not os.path.exists(out) or os.listdir(out) == []  # the folder stays free for the same command
        return
    stopped = re.fullmatch(rf"error: stopped by SIGINT at epoch 1 step (\d+)/{STEPS}; saved (\S+); to continue, run "
                           r"the same command with --resume auto", error)
    assert stopped, error
    assert [m["step_in_epoch"] for m in assert_all_load(out)] == [int(stopped.group(1))]


def test_sigterm_saves_at_the_current_step_and_resume_finishes_the_epoch(resumed_run, data, tmp_path):
    source, _ = resumed_run
    out = tmp_path / "out"
    copy_checkpoint(source, CKPT_1, out)
    run = start_entry("train.py", train_args(data, out, "--epoch_size", "2", "--resume", "auto"))
    run.wait_for(f"epoch 2/2 step 3/{STEPS}")
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 128 + signal.SIGTERM, run.output
    stopped = re.search(rf"error: stopped by SIGTERM at epoch 2 step (\d+)/{STEPS}; saved (\S+); to continue, "
                        r"run the same command with --resume auto", run.output)
    assert stopped, run.output
    step = int(stopped.group(1))
    assert stopped.group(2) == str(out / f"sknet_tiny-2_{step}.ckpt")
    assert [(m["epoch"], m["global_step"], m["step_in_epoch"]) for m in assert_all_load(out)] == \
        [(1, STEPS, 0), (1, STEPS + step, step)]
    resumed = run_entry("train.py", train_args(data, out, "--epoch_size", "2", "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed {stopped.group(2)}" in resumed.stdout
    # Only the rest of epoch 2 was trained: the step count is that of an uninterrupted run.
    assert f"done: 2 epochs, {2 * STEPS} steps" in resumed.stdout
    # ...and each of those steps had the LR of the same step of an uninterrupted run (the schedule
    # continues at the global step, not at the start of the epoch).
    logged = {int(s): float(lr) for s, lr in
              re.findall(rf"^epoch 2/2 step (\d+)/{STEPS} \| loss \S+ \| lr (\S+) \|", resumed.stdout, re.M)}
    assert sorted(logged) == list(range(step + 1, STEPS)), resumed.stdout
    # The epoch's last step is reported by the end-of-epoch line.
    logged[STEPS] = float(re.search(r"^epoch 2/2 \| loss \S+ \| lr (\S+) \|", resumed.stdout, re.M).group(1))
    schedule = learning_rates(load_config(train_args(data, out, "--epoch_size", "2")), 1, STEPS, 0)
    for s, lr in logged.items():
        assert lr == pytest.approx(schedule[STEPS + s - 1], abs=1e-6), f"epoch 2 step {s}"
    assert read_sidecar(str(out / CKPT_2))["global_step"] == 2 * STEPS


def test_the_last_epoch_is_saved_off_the_interval_and_a_finished_run_is_not_resumed(data, tmp_path):
    out = tmp_path / "out"
    done = run_entry("train.py", train_args(data, out, "--epoch_size", "3", "--save_checkpoint_epochs", "2"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert final_names(out) == [CKPT_2, CKPT_3]  # epoch 2 by the interval, epoch 3 as the last one
    again = run_entry("train.py", train_args(data, out, "--epoch_size", "3", "--resume", "auto"))
    assert again.returncode == 1
    assert "already finished epoch 3 of --epoch_size 3" in the_one_error_line(again.stderr)
    assert final_names(out) == [CKPT_2, CKPT_3]
