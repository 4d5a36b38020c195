"""The CIFAR training features together in real train.py runs of the tiny network: the model summary line,
RandAugment, mixup/CutMix with soft targets, AdamW, gradient clipping and drop path, recorded in config.yaml,
then resumed."""
import os

import pytest

from src.utils.config import load_config
from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.tiny_runs import MODEL, run

FEATURES = ["--auto_augment", "randaugment", "--randaugment_num_ops", "3", "--mixup", "0.8", "--cutmix", "1.0",
            "--mixup_prob", "0.9", "--optimizer", "adamw", "--weight_decay", "0.05", "--lr_max", "0.003",
            "--grad_clip_norm", "1.0", "--drop_path_rate", "0.1"]
ARGS = MODEL + ["--batch_size", "8", "--eval_batch_size", "8", "--warmup_epochs", "0", "--log_interval", "0",
                "--num_parallel_workers", "1", *FEATURES]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("data")), per_train_file=8, test_count=8)


@pytest.mark.slow
def test_every_feature_trains_is_recorded_and_resumes(data, tmp_path):
    out = str(tmp_path / "run")
    first = run("train.py", *ARGS, "--epoch_size", "1", "--data_path", data, "--output_path", out)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "model sknet_tiny: 233,450 parameters, 0.0165 G multiply-adds" in first.stdout
    saved = load_config(["--config_path", os.path.join(out, "config.yaml")])
    assert (saved.auto_augment, saved.randaugment_num_ops, saved.mixup, saved.cutmix, saved.mixup_prob,
            saved.optimizer, saved.grad_clip_norm, saved.drop_path_rate) == \
        ("randaugment", 3, 0.8, 1.0, 0.9, "adamw", 1.0, 0.1)
    resumed = run("train.py", "--config_path", os.path.join(out, "config.yaml"), "--epoch_size", "2", "--resume", "auto")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "epoch 2/2" in resumed.stdout and "Traceback" not in resumed.stderr
    # The AdamW moments were restored: another optimizer finds none of its own in the checkpoint.
    other = run("train.py", "--config_path", os.path.join(out, "config.yaml"), "--epoch_size", "3", "--resume", "auto",
                "--optimizer", "momentum")
    assert other.returncode == 1 and "has no optimizer state for moments." in other.stderr
