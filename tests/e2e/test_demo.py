"""The README's first command, scripts/run_demo.sh, on real data (scikit-learn's digits), reduced for CI."""
import json
import os
import re
import subprocess

import numpy as np
import pytest

from src.data.cifar10_files import read_cifar10_bin, resolve_split_files
from src.data.digits_demo import write_digits_dataset
from tests.helpers import REPO_ROOT



def test_digits_become_a_stratified_cifar10_binary_set(tmp_path):
    folder = write_digits_dataset(str(tmp_path), test_fraction=0.2, seed=0)
    train_images, train_labels = read_cifar10_bin(resolve_split_files(folder, "train"))
    test_images, test_labels = read_cifar10_bin(resolve_split_files(folder, "eval"))
    assert len(train_labels) + len(test_labels) == 1797 and train_images.shape[1:] == (32, 32, 3)
    assert abs(len(test_labels) - 0.2 * 1797) <= 10
    assert set(np.bincount(test_labels)) <= set(range(34, 39))  # every digit about equally held out
    # 8x8 digits enlarged 4x and grey: each 4x4 block is one value, and R == G == B.
    block = test_images[0, :4, 4:8, 0]
    assert (block == block[0, 0]).all() and (test_images[..., 0] == test_images[..., 2]).all()
    # No image is both in train and test.
    train_keys = {image.tobytes() for image in train_images}
    duplicates_within_digits = 1797 - len({image.tobytes() for image in np.concatenate([train_images, test_images])})
    assert sum(image.tobytes() in train_keys for image in test_images) <= duplicates_within_digits


@pytest.mark.slow
def test_demo_script_trains_and_beats_chance_by_far(tmp_path):
    """A short run (tiny network, 600 digits, 3 epochs); the README quotes the full one."""
    env = dict(os.environ, DEMO_DIR=str(tmp_path / "demo"), DEMO_ARCH="sknet_tiny", DEMO_EPOCHS="3",
               DEMO_TRAIN_COUNT="600", DEMO_LR="0.05", DEMO_STEM="imagenet", DEMO_IMAGE_SIZE="32")
    proc = subprocess.run(["bash", "scripts/run_demo.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    match = re.search(r"demo: top-1 ([\d.]+)% on 359 held-out digits", proc.stdout)
    assert match, proc.stdout[-2000:]
    # An untrained network scores about 10% on ten balanced classes; measured here: ~80%.
    assert float(match.group(1)) >= 50.0
    results = json.load(open(tmp_path / "demo" / "eval.json"))
    assert results["failed"] == [] and len(results["results"]) == 2
