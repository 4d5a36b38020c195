"""The check every conv implementation passes against `native`: one conv's output and its gradients
with respect to the input and the weight, on random data (tests/unit/test_conv_impl.py and
test_onednn_conv.py)."""
import mindspore as ms
import numpy as np
from mindspore import nn, ops

from src.layers.conv import Conv2d
from src.layers.cpu.batchnorm import CpuBatchNorm2d
from src.layers.create_layers import create_layers

TOLERANCE = 1e-4


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    scale = max(1.0, float(np.abs(expected).max()))
    error = float(np.abs(actual - expected).max())
    assert error <= TOLERANCE * scale, f"{what}: max error {error:.3g} > {TOLERANCE} x {scale:.3g}"


def assert_close_relative(actual: np.ndarray, expected: np.ndarray, what: str, tolerance: float) -> None:
    """max |actual - expected| <= tolerance x max |expected|: for values whose scale is far from 1."""
    error, scale = float(np.abs(actual - expected).max()), float(np.abs(expected).max())
    assert error <= tolerance * scale, f"{what}: max error {error:.3g} > {tolerance} x max |expected| {scale:.3g}"


class OutputAndGradients(nn.Cell):
    """One graph: a cell's output and the gradients of sum(output * upstream) w.r.t. its input and every
    trainable parameter (a tuple, in `trainable_params()` order)."""

    def __init__(self, cell: nn.Cell):
        super().__init__()
        self.cell = cell
        self.grad = ops.GradOperation(get_all=True, get_by_list=True)
        self.weights = ms.ParameterTuple(cell.trainable_params())

    def weighted_sum(self, x, upstream):
        return (self.cell(x) * upstream).sum()

    def construct(self, x, upstream):
        input_grads, weight_grads = self.grad(self.weighted_sum, self.weights)(x, upstream)
        return self.cell(x), input_grads[0], weight_grads


def conv_results(shape, conv_impl: str, weight: np.ndarray, x: np.ndarray, upstream: np.ndarray):
    in_channels, out_channels, kernel, stride, dilation, groups = shape
    conv = Conv2d(in_channels, out_channels, kernel, stride, dilation, groups, layers=create_layers(conv_impl))
    conv.weight.set_data(ms.Tensor(weight))
    output, input_grad, weight_grads = OutputAndGradients(conv)(ms.Tensor(x), ms.Tensor(upstream))
    return [output.asnumpy(), input_grad.asnumpy(), weight_grads[0].asnumpy()]


def check_matches_native(shape, size, conv_impl: str, weight_gradient_tolerance: float | None = None):
    """Output, input gradient and weight gradient of `conv_impl` against `native`, on random data.

    `weight_gradient_tolerance`, if given, bounds the weight gradient's error relative to max |native dw|
    instead of the common TOLERANCE x max(1, max |native dw|).
    """
    in_channels, out_channels, kernel, stride, _, groups = shape
    rng = np.random.default_rng(sum(shape) + size)
    fan_in = in_channels // groups * kernel * kernel
    weight = (rng.standard_normal((out_channels, in_channels // groups, kernel, kernel)) / np.sqrt(fan_in))
    x = rng.standard_normal((2, in_channels, size, size))
    out_size = (size - 1) // stride + 1
    upstream = rng.standard_normal((2, out_channels, out_size, out_size))
    arrays = [a.astype(np.float32) for a in (weight, x, upstream)]
    native = conv_results(shape, "native", *arrays)
    other = conv_results(shape, conv_impl, *arrays)
    for what, a, b in zip(("output", "input gradient", "weight gradient"), other, native):
        assert a.shape == b.shape, what
        if what == "weight gradient" and weight_gradient_tolerance is not None:
            assert_close_relative(a, b, what, weight_gradient_tolerance)
        else:
            assert_close(a, b, what)


def smooth_for_gradients(net: nn.Cell) -> None:
    """Each BatchNorm on its moving statistics, each ReLU a SiLU and each max-pool an average pool over the same windows: a
    network whose gradients are smooth functions of the weights, with every layer's training-mode path."""
    net.set_train(True)
    for _, cell in list(net.cells_and_names()):
        if isinstance(cell, (nn.BatchNorm1d, nn.BatchNorm2d, CpuBatchNorm2d)):
            cell.set_train(False)
        for attr, child in list(cell.name_cells().items()):
            if isinstance(child, nn.ReLU):
                setattr(cell, attr, nn.SiLU())
            elif isinstance(child, nn.MaxPool2d):  # the same windows
                padding = getattr(child, "padding", (0, 0, 0))[-1]
                setattr(cell, attr, nn.AvgPool2d(child.kernel_size, child.stride, pad_mode=child.pad_mode.lower(),
                                                 padding=padding))
