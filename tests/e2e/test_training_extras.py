"""EMA, strong augmentation, the deterministic switch, metrics.png and per-class results, all in real
train.py / eval.py processes on the tiny network (CPU)."""
import json
import os
import re

import numpy as np
import pytest

from src.utils.checkpoint_file import load_checkpoint_file, read_sidecar
from tests.helpers.cifar_data import write_cifar_layout
from src.data.cifar10_files import CLASS_NAMES
from tests.helpers.tiny_runs import MODEL, run

EVERYTHING = MODEL + ["--batch_size", "16", "--eval_batch_size", "8", "--epoch_size", "2", "--warmup_epochs", "0.4",
                      "--lr_max", "0.05", "--log_interval", "0", "--ema_decay", "0.9", "--auto_augment", "cifar10",
                      "--cutout", "8", "--deterministic", "true"]
TEST_IMAGES = 20
STEPS = 5  # 5 files x 16 images / batch 16 (the data below)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("data")), per_train_file=16, test_count=TEST_IMAGES)


def fingerprints(stdout: str) -> list[str]:
    return re.findall(r"final (?:weights|EMA) fingerprint (\w+)", stdout)


@pytest.mark.slow
def test_two_deterministic_runs_with_every_new_flag_agree_and_report_per_class(data, tmp_path):
    outputs = []
    for name in ("first", "second"):
        out = str(tmp_path / name)
        proc = run("train.py", *EVERYTHING, "--data_path", data, "--output_path", out)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append((out, proc.stdout))
    (first, first_log), (_, second_log) = outputs
    assert len(fingerprints(first_log)) == 2 and fingerprints(first_log) == fingerprints(second_log)
    with open(os.path.join(first, "metrics.png"), "rb") as handle:
        png = handle.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert read_sidecar(os.path.join(first, "best.ckpt"))["weights"] == "ema"
    saved, _ = load_checkpoint_file(os.path.join(first, f"sknet_tiny-2_{STEPS}.ckpt"))
    # Every weight and BN statistic has its average (the optimizer's moments and counters have none).
    averages = [name for name in saved if name.startswith("ema.")]
    assert averages and len(averages) == len([n for n in saved if not n.startswith(("ema.", "moments.")) and "." in n])

    result_json = str(tmp_path / "eval.json")
    proc = run("eval.py", *MODEL, "--data_path", data, "--checkpoint_path", first, "--use_ema", "true",
               "--result_json", result_json)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "per-class accuracy of" in proc.stdout and all(name in proc.stdout for name in CLASS_NAMES)
    results = json.load(open(result_json))["results"]
    # best.ckpt holds the EMA of its epoch, which that epoch's checkpoint gives under --use_ema: evaluated once.
    assert len(results) == 2 and all(r["weights"] == "EMA" for r in results)
    assert re.search(r"best\.ckpt \(epoch \d, step \d+\): the weights of sknet_tiny-\d_\d+\.ckpt, not evaluated again",
                     proc.stdout), proc.stdout
    for record in results:
        matrix = np.array(record["confusion_matrix"])
        assert matrix.shape == (10, 10) and matrix.sum() == TEST_IMAGES == record["images"]
