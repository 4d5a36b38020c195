"""BatchNorm folded into the layer before it, for inference (eval.py, export.py, benchmark.py).

In inference mode a BatchNorm is an affine map per channel, y = scale * x + shift with
scale = gamma / sqrt(moving_variance + eps) and shift = beta - moving_mean * scale. After a conv
or a dense layer without bias, scaling the layer's weight by `scale` (per output channel) and
adding `shift` as a bias computes the same function with one small kernel instead of a BatchNorm:
~12% less eval time for SKNet-50 on the CPU (docs/performance.md), and the exported model is
smaller and faster on every runtime.

A network built with `fold_bn=True` (`src.sknet50.create_model`) has a `FoldedBatchNorm` where
the trained one has a BatchNorm, under the same name (`Layers.batchnorm` picks either); `fold_batchnorm`
fills it from a trained one.
Training always uses the unfolded network, so checkpoints never change.
"""
import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import initializer


class FoldedBatchNorm(nn.Cell):
    """What is left of a BatchNorm after folding: the per-channel shift, as a bias (axis 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = Parameter(initializer("zeros", (channels,)), name="bias")

    def construct(self, x):
        return ops.bias_add(x, self.bias)


def _per_channel(vector: np.ndarray, ndim: int) -> np.ndarray:
    return vector.reshape(-1, *([1] * (ndim - 1)))


def folded_values(trained: nn.Cell) -> dict[str, np.ndarray]:
    """Every parameter value of the folded form of `trained` (an unfolded network), by name."""
    values = {param.name: param.asnumpy() for param in trained.get_parameters()}
    folded = {}
    for name, cell in trained.cells_and_names():
        layer = getattr(cell, "bn_folds_into", None)  # set by ConvBNAct, Stem and the SK attention
        if layer is None:
            continue
        prefix = f"{name}." if name else ""
        bn, weight_name = f"{prefix}bn.", f"{prefix}{layer}.weight"
        scale = values[bn + "gamma"] / np.sqrt(values[bn + "moving_variance"] + cell.bn.eps)
        weight = values[weight_name]
        folded[weight_name] = (weight.astype(np.float64) * _per_channel(scale, weight.ndim)).astype(weight.dtype)
        folded[bn + "bias"] = (values[bn + "beta"] - values[bn + "moving_mean"] * scale).astype(np.float32)
        for key in ("gamma", "beta", "moving_mean", "moving_variance"):
            del values[bn + key]
    values.update(folded)
    return values


def fold_batchnorm(trained: nn.Cell, folded: nn.Cell) -> nn.Cell:
    """Put the folded weights of `trained` into `folded` (the same variant built with fold_bn=True); return it."""
    values = folded_values(trained)
    params = list(folded.get_parameters())
    shapes = {name: tuple(value.shape) for name, value in values.items()}
    if shapes != {param.name: tuple(param.shape) for param in params}:
        raise ValueError("fold_batchnorm: the folded network is not the same variant as the trained one")
    for param in params:
        param.set_data(Tensor(values[param.name]))
    return folded
