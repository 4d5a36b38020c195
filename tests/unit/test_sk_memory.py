"""The fast SK unit keeps no broadcast buffer after its forward pass (`scale_channels`).

MindSpore 2.10's CPU broadcasting `Mul` keeps a buffer of 4x its output's size per kernel
for as long as the graph lives. Measured as the growth of the peak resident memory over a
forward pass of a stack of SK units, each stack in a fresh process, at two depths: the slope
(MB per unit) is what each unit keeps. The baseline (the plain broadcasting `Mul`) shows the
quirk (~9x the input per unit), so that this test notices when a MindSpore release fixes
it. The fast unit keeps ~1x its input per unit (measured), which two parallel grouped convs
alone keep too, not the `Mul`. Multiplying by the (B, C, 1, 1) weights directly on the CPU
fails this test.
"""
from tests.helpers.peak_memory import kept_per_layer_mb

BATCH, CHANNELS, SIZE = 16, 64, 32
INPUT_MB = BATCH * CHANNELS * SIZE * SIZE * 4 / 2**20  # 4 MB; each of the 2 paths' outputs is as large
DEPTHS = (3, 9)

WORKER = r"""
import sys
import numpy as np
import mindspore as ms
from mindspore import nn
from src.layers.create_layers import create_layers
from src.layers.selective_kernel import SelectiveKernelConv

explicit = sys.argv[1] == "explicit"
layers, batch, channels, size = map(int, sys.argv[2:])
ms.set_context(mode=ms.GRAPH_MODE)
ms.set_device("CPU")
units = [SelectiveKernelConv(channels, channels, layers=create_layers("fast")) for _ in range(layers)]
for unit in units:
    assert unit.select.explicit_broadcast  # the fast unit's default
    unit.select.explicit_broadcast = explicit
net = nn.SequentialCell(units)
net.set_train(False)
x = ms.Tensor(np.random.default_rng(1).standard_normal((batch, channels, size, size), dtype=np.float32))

net.compile(x)


def run():
    net(x).asnumpy()
"""


def kept_per_unit_mb(tmp_path, variant: str) -> float:
    return kept_per_layer_mb(tmp_path, WORKER, variant, DEPTHS, BATCH, CHANNELS, SIZE)


def test_the_fast_sk_unit_keeps_no_broadcast_buffers(tmp_path):
    plain = kept_per_unit_mb(tmp_path, "plain")
    explicit = kept_per_unit_mb(tmp_path, "explicit")
    print(f"kept per SK unit after a forward pass: {plain:.1f} MB broadcasting Mul, {explicit:.1f} MB "
          f"broadcast_to + Mul (input {INPUT_MB:.0f} MB)")
    assert plain >= 4 * INPUT_MB, f"the broadcasting Mul should keep 4x per path, kept {plain:.1f} MB per unit"
    assert explicit <= 2 * INPUT_MB, f"the fast SK unit kept {explicit:.1f} MB, more than the paths' ~{INPUT_MB:.0f} MB"
