"""Shared set-up of the export and inference tests: untrained checkpoints and the tiny variant's flags."""
import mindspore as ms
import numpy as np

from src.sknet50 import create_model

# The tiny variant at CIFAR resolution, as every export/inference test builds it.
TINY_FLAGS = ["--arch", "sknet_tiny", "--stem_type", "cifar", "--image_size", "32", "--device_target", "CPU"]


def random_network(arch: str, seed: int = 0, head_std: float | None = None, stem_type: str = "cifar"):
    """A randomly initialised `arch` (the CIFAR stem unless told, 10 classes) with non-trivial BN statistics.

    With `head_std`, the classifier's weights are drawn with that std and its bias is zeroed, so that an
    untrained network's top-1 differs between images (otherwise the bias decides every prediction).
    """
    ms.set_seed(seed)
    net = create_model(arch, 10, stem_type=stem_type)
    rng = np.random.default_rng(seed)
    for name, param in net.parameters_and_names():
        if name.endswith(("moving_mean", "moving_variance")):
            values = rng.uniform(0.5, 1.5, param.shape) if name.endswith("variance") else rng.normal(0, 0.1, param.shape)
        elif head_std is not None and name.startswith("fc."):
            values = rng.normal(0, head_std, param.shape) if name.endswith("weight") else np.zeros(param.shape)
        else:
            continue
        param.set_data(ms.Tensor(values.astype(np.float32)))
    return net


def save_tiny_checkpoint(path: str, seed: int = 0) -> str:
    """A randomly initialised sknet_tiny (CIFAR stem) with non-trivial BN statistics, saved to `path`."""
    ms.save_checkpoint(random_network("sknet_tiny", seed), path)
    return path
