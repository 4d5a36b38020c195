"""Faults in a 2-worker CPU msrun job (scripts/run_distribute_train.sh, real processes), one scenario:
a killed rank ends the job non-zero; `--resume auto` restarts it from rank 0's last checkpoint; SIGTERM on
the launcher saves mid-epoch; and a second resume ends where an uninterrupted run ends, ranks in lockstep.
One scenario, because each msrun job costs ~40 s of the suite."""
import os
import re
import signal
import sys
import time

import pytest

from src.utils.checkpoint_file import list_checkpoints, load_checkpoint_file
from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.faults import fault_env
from tests.helpers.launchers import SCRIPTS_DIR, free_port
from tests.helpers.processes import HANG_BOUND, Watched
from tests.helpers.processes import environment_of, processes_with

STEPS = 5  # 40 images, 20 per rank, batch 4
TINY = ["--arch", "sknet_tiny", "--stem_type", "cifar", "--image_size", "32", "--batch_size", "4",
        "--warmup_epochs", "0", "--eval_interval", "0", "--log_interval", "1", "--num_parallel_workers", "1"]


# Starts a command with SIGINT at its default: bash cannot trap a signal that was ignored when it started
# (as in a background job), and the launcher's Ctrl-C handling is what the test is about.
WITH_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execvp(sys.argv[1], sys.argv[1:])")


def launch(data: str, out, logs, *extra: str, env: dict | None = None) -> Watched:
    env = {"DEVICE_TARGET": "CPU", "MASTER_PORT": str(free_port()), "LOG_DIR": str(logs), **(env or {})}
    return Watched([sys.executable, "-c", WITH_SIGINT, "bash", os.path.join(SCRIPTS_DIR, "run_distribute_train.sh"),
                    data, "2", *TINY, "--epoch_size", "3", "--output_path", str(out), *extra], env, cwd=str(out.parent))


def wait_for_log(path, text: str, job: Watched) -> None:
    deadline = time.monotonic() + HANG_BOUND
    while not (os.path.exists(path) and text in open(path, encoding="utf-8", errors="replace").read()):
        assert job.proc.poll() is None, f"the job ended before {text!r} appeared in {path}"
        assert time.monotonic() < deadline, f"{text!r} did not appear in {path} within {HANG_BOUND} s"
        time.sleep(0.5)


def worker_log(logs, rank: int) -> str:
    with open(logs / f"worker_{rank}.log", encoding="utf-8", errors="replace") as log:
        return log.read()


@pytest.mark.slow
def test_a_killed_rank_then_sigterm_and_two_resumes_end_like_an_uninterrupted_run(tmp_path):
    data = write_cifar_layout(str(tmp_path / "data"), per_train_file=8, test_count=4)
    out = tmp_path / "out"
    checkpoint_1 = str(out / f"sknet_tiny-1_{STEPS}.ckpt")

    # 1. Rank 0 parks inside its second save (end of epoch 2, before the rename), so rank 1 is surely
    # mid-run, waiting in epoch 3 for rank 0's gradients, when it is killed: no race with a fast step.
    job = launch(data, out, tmp_path / "logs", env=fault_env(pause_in_save=2))
    wait_for_log(tmp_path / "logs" / "worker_0.log", "fault: paused in save", job)
    rank1 = [pid for pid in processes_with(str(out)) if environment_of(pid).get("RANK_ID") == "1"
             and environment_of(pid).get("MS_ROLE") == "MS_WORKER"]
    assert len(rank1) == 1
    os.kill(rank1[0], signal.SIGKILL)
    killed_at = time.monotonic()
    assert job.finish() != 0, job.output[-3000:]  # finish() fails the test if the job hangs
    print(f"the job ended {time.monotonic() - killed_at:.0f} s after rank 1 was killed")
    assert processes_with(str(out)) == []
    assert list_checkpoints(str(out)) == [checkpoint_1]

    # 2. Resumed from rank 0's checkpoint; SIGTERM on the launcher (msrun itself would SIGKILL the workers,
    # the launcher hands them SIGTERM), so rank 0 saves at a step boundary. Each step waits 2 s, so the
    # signal (sent when step 2 is logged) lands inside epoch 2 even on a busy machine.
    logs = tmp_path / "logs_resumed"
    resumed = launch(data, out, logs, "--resume", "auto", env=fault_env(step_delay=2.0))
    wait_for_log(logs / "worker_0.log", f"epoch 2/3 step 2/{STEPS}", resumed)
    resumed.proc.send_signal(signal.SIGTERM)
    assert resumed.finish() == 143, resumed.output[-3000:]
    assert processes_with(str(out)) == []
    for rank in (0, 1):
        text = worker_log(logs, rank)
        assert f"[rank {rank}] resumed {checkpoint_1}: epoch 1, global step {STEPS}" in text
        assert f"[rank {rank}] epoch 1/3 " not in text
    assert "[rank 0] stopped by SIGTERM at epoch 2 step" in worker_log(logs, 0)
    newest = list_checkpoints(str(out))[-1]
    saved_step = load_checkpoint_file(newest)[1]["global_step"]
    assert STEPS < saved_step < 2 * STEPS, newest

    # 3. Resumed again, mid-epoch: it ends with the uninterrupted run's checkpoints and step count.
    logs = tmp_path / "logs_resumed_again"
    again = launch(data, out, logs, "--resume", "auto")
    assert again.finish() == 0, again.output[-3000:]
    fingerprints = []
    for rank in (0, 1):
        text = worker_log(logs, rank)
        assert f"[rank {rank}] resumed {newest}: epoch " in text and f"global step {saved_step}" in text
        fingerprints += re.findall(rf"\[rank {rank}\] final weights fingerprint (\w+)", text)
    # The resumed ranks still train in lockstep (averaged gradients).
    assert len(fingerprints) == 2 and len(set(fingerprints)) == 1
    checkpoints = list_checkpoints(str(out))
    assert checkpoints[0] == checkpoint_1 and checkpoints[-2:] == [str(out / f"sknet_tiny-{e}_{STEPS}.ckpt")
                                                                  for e in (2, 3)]
    assert [load_checkpoint_file(path)[1]["global_step"] for path in checkpoints[-2:]] == [2 * STEPS, 3 * STEPS]


@pytest.mark.slow
def test_ctrl_c_on_the_launcher_saves_once_and_ends_with_130_and_no_traceback(tmp_path):
    data = write_cifar_layout(str(tmp_path / "data"), per_train_file=8, test_count=4)
    out, logs = tmp_path / "out", tmp_path / "logs"
    out.mkdir()
    job = launch(data, out, logs, env=fault_env(step_delay=1.0))
    wait_for_log(logs / "worker_0.log", f"epoch 1/3 step 2/{STEPS}", job)
    job.proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    assert job.finish() == 130, job.output[-3000:]
    print(f"the job ended {time.monotonic() - sent:.0f} s after Ctrl-C")
    assert "SIGTERM to 2 ranks" in job.output, job.output[-3000:]
    assert not re.search(r"Traceback|\[ERROR\]|timed out|Terminated", job.output), job.output[-3000:]
    assert job.lines[-1].startswith("error: interrupted (exit code 130)"), job.output[-3000:]
    assert processes_with(str(out)) == []
    stopped = [re.search(rf"\[rank {rank}\] stopped by SIGTERM at epoch 1 step (\d+)/{STEPS}", worker_log(logs, rank))
               for rank in (0, 1)]
    assert all(stopped) and stopped[0].group(1) == stopped[1].group(1)  # the ranks stopped after the same step
    step = int(stopped[0].group(1))
    assert [os.path.basename(p) for p in list_checkpoints(str(out))] == [f"sknet_tiny-1_{step}.ckpt"]
