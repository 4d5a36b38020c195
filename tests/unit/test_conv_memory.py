"""The fast conv's backward pass recomputes its im2col columns instead of keeping them.

Measured as the growth of the peak resident memory over a training step of a stack of
grouped 3x3 convs, each stack in a fresh process, at two depths: the slope (MB per conv) is
what each conv keeps for its backward pass. With `GemmConv` that is its input, as for a native
conv; the same GEMM conv differentiated automatically keeps its columns, 9x the input.
Removing the recomputation, or letting the scheduler hoist it into the forward pass, fails
this test.
"""
import pytest

from tests.helpers.peak_memory import kept_per_layer_mb

BATCH, CHANNELS, SIZE, GROUPS = 16, 128, 32, 32
INPUT_MB = BATCH * CHANNELS * SIZE * SIZE * 4 / 2**20  # 8 MB; one conv's columns are 9x that
DEPTHS = (12, 24)  # deep enough that the kept tensors, not the transient ones, set the peak

WORKER = r"""
import sys
import numpy as np
import mindspore as ms
from mindspore import nn
from src.layers.cpu.gemm_conv import GemmConv, conv2d_gemm

recompute = sys.argv[1] == "recompute"
layers, batch, channels, size, groups = map(int, sys.argv[2:])
ms.set_context(mode=ms.GRAPH_MODE)
ms.set_device("CPU")


class AutodiffGemmConv(nn.Cell):
    def construct(self, x, weight):
        return conv2d_gemm(x, weight, 1, 1, 1, groups)


class Stack(nn.Cell):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.weights = ms.ParameterTuple([
            ms.Parameter(ms.Tensor(rng.standard_normal((channels, channels // groups, 3, 3), dtype=np.float32) * 0.1),
                         name=f"w{i}") for i in range(layers)])
        self.convs = nn.CellList([GemmConv(3, 1, 1, 1, groups) if recompute else AutodiffGemmConv()
                                  for _ in range(layers)])

    def construct(self, x):
        for conv, weight in zip(self.convs, self.weights):
            x = conv(x, weight)
        return x.sum()


net = Stack()
step = nn.TrainOneStepCell(net, nn.SGD(net.trainable_params(), learning_rate=0.0))
x = ms.Tensor(np.random.default_rng(1).standard_normal((batch, channels, size, size), dtype=np.float32))

step.compile(x)


def run():
    step(x).asnumpy()
"""


def kept_per_conv_mb(tmp_path, variant: str) -> float:
    return kept_per_layer_mb(tmp_path, WORKER, variant, DEPTHS, BATCH, CHANNELS, SIZE, GROUPS)


@pytest.mark.slow
def test_backward_recomputes_the_columns_instead_of_keeping_them(tmp_path):
    autodiff = kept_per_conv_mb(tmp_path, "autodiff")
    recompute = kept_per_conv_mb(tmp_path, "recompute")
    print(f"kept per conv for the backward pass: {autodiff:.1f} MB autodiff, {recompute:.1f} MB recomputed "
          f"(input {INPUT_MB:.0f} MB)")
    assert autodiff >= 4 * INPUT_MB, f"the baseline should keep the columns, kept {autodiff:.1f} MB per conv"
    assert recompute <= 2 * INPUT_MB, f"GemmConv kept {recompute:.1f} MB per conv; its input is {INPUT_MB:.0f} MB"
