"""`ZeroPadMaxPool2d`: a padded max-pool of a non-negative input (after a ReLU) as zero padding + an unpadded pool.

MindSpore 2.10 exports nn.MaxPool2d(pad_mode="pad") as `MaxPool3DWithArgmax`, an op that MindSpore Lite 2.0
lacks and no Ascend 310 has been shown to run; `Pad` and a `valid` `MaxPool` are in every runtime. With every
input >= 0 a zero pad never wins over a real value it ties with, so values are the same as -inf padding; a tie
only arises where the input is 0, which a ReLU's gradient zeroes anyway, so the gradients are the same too.
"""
from mindspore import nn


class ZeroPadMaxPool2d(nn.Cell):
    """nn.MaxPool2d(kernel_size, stride, pad_mode="pad", padding=padding) for inputs >= 0 (after a ReLU)."""

    def __init__(self, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.pad = nn.Pad(((0, 0), (0, 0), (padding, padding), (padding, padding)))
        self.pool = nn.MaxPool2d(kernel_size=kernel_size, stride=stride, pad_mode="valid")

    def construct(self, x):
        return self.pool(self.pad(x))
