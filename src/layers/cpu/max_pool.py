"""`CpuMaxPool2d`: the stem's max-pool of `conv_impl onednn`, by a C++ op (`max_pool.cc`) in inference.

nn.MaxPool2d with padding runs as `MaxPool3DWithArgmax` on MindSpore 2.10's CPU, ~7 ms of a ~150 ms SKNet-50
eval step at 32x32 and batch 32; the op computes the same maxima (bit for bit: a max is exact) 3.5x faster
(docs/performance.md). It has no gradient, so training runs `ZeroPadMaxPool2d` (the same values for an input >= 0).
"""
import numpy as np
import mindspore as ms
from mindspore import nn, ops

from src.layers.conv_geometry import output_size
from src.layers.zero_pad_max_pool import ZeroPadMaxPool2d
from src.layers.cpu.ops_library import onednn_library


class CpuMaxPool2d(nn.Cell):
    """nn.MaxPool2d(kernel_size, stride, pad_mode="pad", padding=padding) of an input >= 0 (after a ReLU):
    `ZeroPadMaxPool2d` in training, the op in inference."""

    def __init__(self, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.train_pool = ZeroPadMaxPool2d(kernel_size, stride, padding)
        # (kernel, stride, padding) reach the C++ op as a small constant input: aot ops have no attributes.
        self.geometry = ms.Tensor(np.array([kernel_size, stride, padding], dtype=np.int64))

        def out_shape(x, geometry):
            return (x[0], x[1], output_size(x[2], kernel_size, stride, padding),
                    output_size(x[3], kernel_size, stride, padding))

        self.pool = ops.Custom(f"{onednn_library()}:cpu_max_pool_forward", out_shape=out_shape,
                               out_dtype=lambda x, geometry: x, func_type="aot")

    def construct(self, x):
        if self.training:
            return self.train_pool(x)
        return self.pool(x, self.geometry)
