"""Several steps per host round trip train exactly like single steps: real train.py processes on the tiny
network (on the CPU, the host loop of src/training/sunk_steps.py), compared by their logged fingerprints
and metrics.csv, also across a SIGTERM that lands inside a sink."""
import csv
import os
import re
import signal
import time

import numpy as np
import pytest

from src.utils.checkpoint_file import load_checkpoint_file
from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.faults import fault_env
from tests.helpers.processes import run_entry, start_entry
from tests.helpers.tiny_runs import CKPT_1, assert_all_load, copy_checkpoint, train_args
from tests.helpers.tiny_runs import TINY_STEPS as STEPS

pytestmark = pytest.mark.slow

# No augmentation: a resumed epoch restarts the data pipeline and must see the same images.
SAME_DATA = ["--augment", "false", "--epoch_size", "2", "--ema_decay", "0.9"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("data")), per_train_file=8, test_count=8)


@pytest.fixture(scope="module")
def straight_runs(data, tmp_path_factory):
    """Two uninterrupted runs, one step per sink and five: {sink_size: (folder, stdout)}."""
    runs = {}
    for sink_size in ("1", "5"):
        out = tmp_path_factory.mktemp(f"sink_{sink_size}")
        result = run_entry("train.py", train_args(data, out, *SAME_DATA, "--sink_size", sink_size))
        assert result.returncode == 0, result.stdout + result.stderr
        runs[sink_size] = (out, result.stdout)
    return runs


def fingerprints(stdout: str) -> list[str]:
    return re.findall(r"final (?:weights|EMA) fingerprint (\w+)", stdout)


def epoch_losses(folder) -> list[float]:
    with open(os.path.join(folder, "metrics.csv"), newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def test_five_sunk_steps_train_like_five_single_steps(straight_runs):
    (single, single_log), (sunk, sunk_log) = straight_runs["1"], straight_runs["5"]
    assert "1 steps per sink" in single_log and "5 steps per sink" in sunk_log
    assert len(fingerprints(single_log)) == 2 and fingerprints(sunk_log) == fingerprints(single_log)
    assert len(epoch_losses(single)) == 2
    assert epoch_losses(sunk) == pytest.approx(epoch_losses(single), rel=1e-6)  # device float32 sums vs host means
    # --log_interval 1: one progress line per sink, none at the epoch's end (the epoch line has it)
    assert re.findall(rf"^epoch 1/2 step (\d+)/{STEPS} ", sunk_log, re.M) == ["5"]


def test_sigterm_inside_a_sink_saves_at_its_end_and_resume_ends_like_an_uninterrupted_run(straight_runs, data,
                                                                                         tmp_path):
    single, single_log = straight_runs["1"]
    out = tmp_path / "out"
    copy_checkpoint(single, CKPT_1, out)
    command = train_args(data, out, *SAME_DATA, "--sink_size", "2", "--resume", "auto")
    run = start_entry("train.py", command, env=fault_env(step_delay=1))  # each step waits 1 s first
    run.wait_for(f"epoch 2/2 step 2/{STEPS}")
    time.sleep(0.5)  # past the stop check of step 2's sink end: the signal lands inside the sink of steps 3-4
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 128 + signal.SIGTERM, run.output
    stopped = re.search(rf"error: stopped by SIGTERM at epoch 2 step (\d+)/{STEPS}; saved (\S+);", run.output)
    assert stopped, run.output
    step = int(stopped.group(1))
    assert step in (4, 6, 8), "saved at the end of a sink of 2, inside the epoch"
    assert [(m["epoch"], m["global_step"], m["step_in_epoch"]) for m in assert_all_load(out)] == \
        [(1, STEPS, 0), (1, STEPS + step, step)]
    resumed = run_entry("train.py", command)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed {stopped.group(2)}" in resumed.stdout
    assert len(fingerprints(resumed.stdout)) == 2 and fingerprints(resumed.stdout) == fingerprints(single_log)
    # The whole final checkpoint, beyond the fingerprints: the EMA of the BN statistics, the moments, the counters.
    final = f"sknet_tiny-2_{STEPS}.ckpt"
    expected, _ = load_checkpoint_file(os.path.join(single, final))
    got, _ = load_checkpoint_file(os.path.join(out, final))
    averages = [name for name in expected if name.startswith("ema.")]
    assert any(name.endswith("moving_mean") for name in averages) and set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
