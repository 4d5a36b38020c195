"""A resume that changes the LR schedule: real train.py processes on the tiny network and 40 images."""
import os
import re

import pytest

from src.training.build import learning_rates
from src.utils.checkpoint_file import read_sidecar
from src.utils.config import load_config
from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.processes import run_entry
from tests.helpers.tiny_runs import CKPT_1, train_args
from tests.helpers.tiny_runs import TINY_STEPS as STEPS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("data")), per_train_file=8, test_count=8)


def test_resume_auto_with_twice_the_batch_continues_at_the_images_seen(data, tmp_path):
    """One epoch of batch 4 (10 steps, 40 images), then `--resume auto --batch_size 8 --epoch_size 2`: the
    new schedule has 10 steps of 8 images and continues at its step 5 (this raised "start_step 10 is outside
    the schedule of 10 steps" when the position was the step index)."""
    out = tmp_path / "out"
    first = run_entry("train.py", train_args(data, out, "--epoch_size", "1", "--warmup_epochs", "1"))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "warning: --warmup_epochs 1 covers all 1 epochs, so the LR only rises" in first.stdout
    saved = read_sidecar(str(out / CKPT_1))
    assert (saved["images_seen"], saved["batch_size"], saved["device_num"], saved["epoch_size"]) == (40, 4, 1, 1)

    flags = ["--epoch_size", "2", "--batch_size", "8", "--warmup_epochs", "0.5"]
    resumed = run_entry("train.py", train_args(data, out, *flags, "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    half = STEPS // 2
    schedule = learning_rates(load_config(train_args(data, out, *flags)), 1, half, 0)
    expected = (f"resume: the LR schedule changes (--batch_size 4 -> 8, --epoch_size 1 -> 2, steps per epoch "
                f"{STEPS} -> {half}); it continues by the 40 images seen at step {half} of {STEPS}, and the LR goes "
                f"from {saved['next_lr']:.6g} to {schedule[half]:.6g}")
    assert expected in resumed.stdout.splitlines(), resumed.stdout
    assert f"done: 2 epochs, {STEPS + half} steps" in resumed.stdout
    logged = {int(s): float(lr) for s, lr in
              re.findall(rf"^epoch 2/2 step (\d+)/{half} \| loss \S+ \| lr (\S+) \|", resumed.stdout, re.M)}
    assert sorted(logged) == list(range(1, half)), resumed.stdout
    for step, lr in logged.items():
        assert lr == pytest.approx(schedule[half + step - 1], abs=1e-6), f"epoch 2 step {step}"
    final = read_sidecar(os.path.join(out, f"sknet_tiny-2_{half}.ckpt"))
    assert (final["global_step"], final["images_seen"], final["batch_size"]) == (STEPS + half, 80, 8)
