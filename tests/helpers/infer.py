"""Shared set-up of the export and inference tests: a tiny checkpoint and its flags."""
import mindspore as ms
import numpy as np

from src.sknet50 import create_model

# The tiny variant at CIFAR resolution, as every export/inference test builds it.
TINY_FLAGS = ["--arch", "sknet_tiny", "--stem_type", "cifar", "--image_size", "32", "--device_target", "CPU"]


def save_tiny_checkpoint(path: str, seed: int = 0) -> str:
    """A randomly initialised sknet_tiny (CIFAR stem) with non-trivial BN statistics, saved to `path`."""
    ms.set_seed(seed)
    net = create_model("sknet_tiny", 10, stem_type="cifar")
    rng = np.random.default_rng(seed)
    for name, param in net.parameters_and_names():
        if name.endswith(("moving_mean", "moving_variance")):
            values = rng.uniform(0.5, 1.5, param.shape) if name.endswith("variance") else rng.normal(0, 0.1, param.shape)
            param.set_data(ms.Tensor(values.astype(np.float32)))
    ms.save_checkpoint(net, path)
    return path
