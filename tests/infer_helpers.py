"""Shared set-up of the export and inference tests: a tiny checkpoint and small CIFAR-10 files."""
import os

import mindspore as ms
import numpy as np

from src.dataset import EVAL_FILES, TRAIN_FILES, write_cifar10_bin
from src.sknet50 import create_model

# The tiny variant at CIFAR resolution, as every export/inference test builds it.
TINY_FLAGS = ["--arch", "sknet_tiny", "--stem_type", "cifar", "--image_size", "32", "--device_target", "CPU"]


def write_cifar10_folder(folder: str, eval_images: int, train_images: int = 0, seed: int = 0) -> str:
    """A cifar-10-batches-bin folder of random images: test_batch.bin, and the data_batch files when
    `train_images` > 0. Returns the folder."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = [(EVAL_FILES[0], eval_images)] + ([(name, train_images) for name in TRAIN_FILES] if train_images else [])
    for name, count in files:
        write_cifar10_bin(os.path.join(folder, name), rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8),
                          rng.integers(0, 10, count))
    return folder


def save_tiny_checkpoint(path: str, class_num: int = 10, seed: int = 0) -> str:
    """A randomly initialised sknet_tiny (CIFAR stem) with non-trivial BN statistics, saved to `path`."""
    ms.set_seed(seed)
    net = create_model("sknet_tiny", class_num, stem_type="cifar")
    rng = np.random.default_rng(seed)
    for name, param in net.parameters_and_names():
        if name.endswith(("moving_mean", "moving_variance")):
            values = rng.uniform(0.5, 1.5, param.shape) if name.endswith("variance") else rng.normal(0, 0.1, param.shape)
            param.set_data(ms.Tensor(values.astype(np.float32)))
    ms.save_checkpoint(net, path)
    return path
