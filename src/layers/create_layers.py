"""The layers a network is built from, for one resolved conv_impl: chosen once here, handed to every block.

As timm's `create_conv2d` and `create_act`, this is the one module that maps an implementation to cells;
`src.sknet50` calls `create_layers(conv_impl)` once and passes the result down, so no model file asks which
implementation runs. Every implementation keeps the parameters (names, shapes, initial values) of `native`,
so checkpoints move between them. `src.utils.device.resolve_conv_impl` maps `auto` and refuses what the
device cannot run; the CPU implementations live in `src.layers.cpu`, which only this module imports.
"""
from mindspore import nn

from src.layers.conv import NativeConv
from src.layers.cpu.batchnorm import CpuBatchNorm2d
from src.layers.cpu.gemm_conv import FastConv
from src.layers.cpu.max_pool import CpuMaxPool2d
from src.layers.cpu.onednn_conv import OneDnnPathConv
from src.layers.cpu.sk_pool_select import PooledSum, SelectOfTwo
from src.layers.fold_batchnorm import FoldedBatchNorm
from src.layers.selective_kernel import PathSumPool, ScaledPathSum
from src.layers.split_grouped_conv import SplitGroupedConv
from src.layers.zero_pad_max_pool import ZeroPadMaxPool2d


class Layers:
    """`native`: MindSpore's own cells on every device (GPU and Ascend by default)."""
    name = "native"
    conv_class = NativeConv
    # MindSpore's CPU broadcasting Mul keeps 4x its output; the CPU paths scale SK maps explicitly
    # (`src.layers.selective_kernel.scale_channels`), other backends broadcast natively.
    explicit_broadcast = False

    def conv(self, kernel_size: int, stride: int, dilation: int, groups: int) -> nn.Cell:
        """The cell that computes a conv from its layer's weight: cell(x, weight), and `with_bias` for inference."""
        return self.conv_class(kernel_size, stride, dilation, groups)

    def batchnorm(self, channels: int, fold_bn: bool, dims: int = 2, gamma_init: str = "ones") -> nn.Cell:
        """The `bn` of a layer: a trainable BatchNorm (1-d or 2-d), or its folded inference form."""
        if fold_bn:
            return FoldedBatchNorm(channels)
        if dims == 1:
            return nn.BatchNorm1d(channels, gamma_init=gamma_init)
        return self.batchnorm2d(channels, gamma_init)

    def batchnorm2d(self, channels: int, gamma_init: str) -> nn.Cell:
        return nn.BatchNorm2d(channels, gamma_init=gamma_init)

    def max_pool(self, kernel_size: int, stride: int, padding: int) -> nn.Cell:
        """A padded max-pool of an input >= 0 (after a ReLU)."""
        return ZeroPadMaxPool2d(kernel_size, stride, padding)

    def sk_pool(self, paths: int) -> nn.Cell:
        """The SK unit's Fuse pooling: cell(outputs) -> (B, C)."""
        return PathSumPool()

    def sk_select(self, paths: int) -> nn.Cell:
        """The SK unit's Select: cell(outputs, weights (B, paths, C)) -> the weighted sum of the outputs."""
        return ScaledPathSum(self.explicit_broadcast)


class SplitLayers(Layers):
    """`split`: `native`, but a grouped conv as one conv per group (opt-in on Ascend)."""
    name = "split"
    conv_class = SplitGroupedConv


class FastLayers(Layers):
    """`fast`: the CPU's convolutions as GEMMs of MindSpore ops; the CPU path where `onednn` cannot be built."""
    name = "fast"
    conv_class = FastConv
    explicit_broadcast = True


class OneDnnLayers(FastLayers):
    """`onednn`: convs through MindSpore's bundled oneDNN, and C++ ops for BatchNorm's training pass, the stem's
    inference max-pool and the two-path SK unit's pooling and selection (the CPU default where g++ builds them)."""
    name = "onednn"
    conv_class = OneDnnPathConv

    def batchnorm2d(self, channels: int, gamma_init: str) -> nn.Cell:
        return CpuBatchNorm2d(channels, gamma_init=gamma_init)

    def max_pool(self, kernel_size: int, stride: int, padding: int) -> nn.Cell:
        return CpuMaxPool2d(kernel_size, stride, padding)

    def sk_pool(self, paths: int) -> nn.Cell:
        return PooledSum() if paths == 2 else super().sk_pool(paths)

    def sk_select(self, paths: int) -> nn.Cell:
        return SelectOfTwo() if paths == 2 else super().sk_select(paths)


LAYERS: dict[str, type[Layers]] = {layers.name: layers for layers in (Layers, SplitLayers, FastLayers, OneDnnLayers)}


def create_layers(conv_impl: str) -> Layers:
    """The layers of a resolved conv_impl (`native`, `split`, `fast` or `onednn`)."""
    if conv_impl not in LAYERS:
        raise ValueError(f"conv_impl must be one of {', '.join(LAYERS)} (resolve 'auto' first with "
                         f"src.utils.device.resolve_conv_impl), got {conv_impl!r}")
    return LAYERS[conv_impl]()
