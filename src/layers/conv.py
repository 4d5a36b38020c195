"""The convolution layers every SKNet conv is built from: `Conv2d` and `ConvBNAct`.

A `Conv2d` owns one `weight` parameter whatever computes it, so parameter names and shapes never
depend on the device or the algorithm, and checkpoints move freely between Ascend, GPU and CPU:
- `native`: `ops.conv2d`, the vendor kernels (the choice on GPU and Ascend);
- `split`: `native`, but a grouped conv is one conv per group (`src.layers.split_grouped_conv`),
  because Ascend documents grouped convs as depthwise-only (the `auto` choice on Ascend);
- `fast`: the CPU algorithms of `src.layers.cpu_gemm_conv` (CPU only);
- `onednn`: every conv but an ungrouped 1x1 through oneDNN's own layouts (`src.layers.onednn_conv`, CPU
  only, opt-in: it compiles a small C++ op at first use); an ungrouped 1x1 is one oneDNN GEMM below
  `NATIVE_POINTWISE_MIN_PIXELS` output pixels and `fast`'s `conv2d_pointwise` (native) from there up.
The model receives `conv_impl` already resolved; `src.utils.device.resolve_conv_impl` maps `auto`.
"""
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeNormal, initializer

from src.layers.conv_geometry import output_size, same_padding
from src.layers.cpu_gemm_conv import (NATIVE_POINTWISE_MIN_PIXELS, SMALL_IMAGE_MAX_PIXELS, GemmConv, conv2d_pointwise,
                                      conv2d_small_image)
from src.layers.fold_batchnorm import batchnorm_or_folded
from src.layers.onednn_conv import OneDnnConv, OneDnnPointwiseConv
from src.layers.split_grouped_conv import conv2d_split_groups
from src.utils.device import CPU_CONV_IMPLS, MODEL_CONV_IMPLS

# Training on maps of at most 2x2 pixels, `conv2d_small_image` beats oneDNN: forward + backward of a
# 32-group 3x3 conv at batch 32, 512-1024 channels, 2x2 and 1x1 maps, fwd+bwd 0.41-0.81x for oneDNN
# (its backward passes), while its forward alone is 1.4x faster there, so inference keeps oneDNN.
# From 4x4 up oneDNN wins both (1.2-4.0x fwd+bwd). Paired runs in one process, 2026-11-27.
ONEDNN_TRAIN_SMALL_IMAGE_MAX_PIXELS = 4


class Conv2d(nn.Cell):
    """A bias-free 2-D convolution with explicit symmetric padding (PyTorch semantics).

    Padding is always explicit (`pad_mode='pad'`), never `'same'`: a dilated conv exported
    with `'same'` becomes ONNX `auto_pad=SAME_UPPER`, which ONNX Runtime refuses.
    The weight is Kaiming-normal (fan_out, ReLU), as in the paper's ResNeXt baseline.
    With `conv_impl='fast'` an ungrouped 1x1 conv is `conv2d_pointwise`, and every other conv
    is `conv2d_small_image` on images of at most `SMALL_IMAGE_MAX_PIXELS` pixels and
    `GemmConv` (im2col) on larger ones; the parameter is the same. With `conv_impl='onednn'` every
    conv but an ungrouped 1x1 is `OneDnnConv`, except in training on maps of at most
    `ONEDNN_TRAIN_SMALL_IMAGE_MAX_PIXELS` pixels (`conv2d_small_image`); an ungrouped 1x1 is
    `OneDnnPointwiseConv` below `NATIVE_POINTWISE_MIN_PIXELS` output pixels (eval 1.09x, train 1.05x at
    32x32, paired; from 16 pixels up the native kernel wins: 0.88x with 8x8 maps too) and `conv2d_pointwise`
    from there up.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, conv_impl: str = "native"):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"channels {in_channels}->{out_channels} are not divisible by groups={groups}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.groups = groups
        self.padding = same_padding(kernel_size, dilation)
        if conv_impl not in MODEL_CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {', '.join(MODEL_CONV_IMPLS)} (resolve 'auto' first), "
                             f"got {conv_impl!r}")
        self.conv_impl = conv_impl
        shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        self.weight = Parameter(initializer(HeNormal(mode="fan_out", nonlinearity="relu"), shape), name="weight")
        self.pointwise = kernel_size == 1 and groups == 1
        self.gemm = None
        self.onednn = None
        if conv_impl == "fast" and not self.pointwise:
            self.gemm = GemmConv(kernel_size, stride, self.padding, dilation, groups)
        if conv_impl == "onednn":
            self.onednn = OneDnnPointwiseConv(stride) if self.pointwise else OneDnnConv(kernel_size, stride,
                                                                                          dilation, groups)

    def construct(self, x):
        if self.onednn is not None and self.pointwise:
            if self._small_pointwise(x.shape):
                return self.onednn(x, self.weight)
            return conv2d_pointwise(x, self.weight, self.stride)
        if self.onednn is not None:
            if self.training and x.shape[2] * x.shape[3] <= ONEDNN_TRAIN_SMALL_IMAGE_MAX_PIXELS:
                return conv2d_small_image(x, self.weight, self.stride, self.padding, self.dilation, self.groups)
            return self.onednn(x, self.weight)
        if self.gemm is not None:
            if x.shape[2] * x.shape[3] <= SMALL_IMAGE_MAX_PIXELS:
                return conv2d_small_image(x, self.weight, self.stride, self.padding, self.dilation, self.groups)
            if self.gemm.keeps_columns(x.shape):
                return self.gemm(x, self.weight)[0]
            return self.gemm(x, self.weight)
        if self.conv_impl in CPU_CONV_IMPLS:
            return conv2d_pointwise(x, self.weight, self.stride)
        if self.conv_impl == "split" and self.groups > 1:
            return conv2d_split_groups(x, self.weight, self.stride, self.padding, self.dilation, self.groups)
        return ops.conv2d(x, self.weight, None, self.stride, "pad", self.padding, self.dilation, self.groups)

    def with_bias(self, x, bias, relu: bool):
        """Inference: conv(x) + bias (per output channel), then ReLU if `relu`; one op where `onednn` computes
        the conv, the conv and two kernels elsewhere."""
        if self.onednn is not None and (not self.pointwise or self._small_pointwise(x.shape)):
            return self.onednn.epilogue(x, self.weight, bias, relu)
        x = ops.bias_add(self.construct(x), bias)
        return ops.relu(x) if relu else x

    def _small_pointwise(self, shape) -> bool:
        """Whether an ungrouped 1x1 conv of an input of `shape` has fewer than NATIVE_POINTWISE_MIN_PIXELS outputs."""
        pixels = output_size(shape[2], 1, self.stride, 0, 1) * output_size(shape[3], 1, self.stride, 0, 1)
        return pixels < NATIVE_POINTWISE_MIN_PIXELS

    def extend_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"dilation={self.dilation}, groups={self.groups}, impl={self.conv_impl}")


class ConvBNAct(nn.Cell):
    """Conv2d -> BatchNorm -> optional ReLU; the unit that every SKNet conv is built from.

    With `fold_bn` (inference only) the BatchNorm is a bias folded into the conv
    (`src.layers.fold_batchnorm`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, act: bool = True, zero_init_bn: bool = False,
                 conv_impl: str = "native", fold_bn: bool = False):
        super().__init__()
        self.bn_folds_into = "conv"  # the layer whose weight `fold_batchnorm` scales
        self.conv = Conv2d(in_channels, out_channels, kernel_size, stride, dilation, groups, conv_impl)
        self.bn = batchnorm_or_folded(out_channels, fold_bn, gamma_init="zeros" if zero_init_bn else "ones",
                                      conv_impl=conv_impl)
        self.act = nn.ReLU() if act else None
        # the folded shift and the ReLU inside the conv's op (Conv2d.with_bias)
        self.epilogue_in_conv = fold_bn and conv_impl == "onednn"

    def construct(self, x):
        if self.epilogue_in_conv:
            return self.conv.with_bias(x, self.bn.bias, self.act is not None)
        x = self.bn(self.conv(x))
        if self.act is not None:
            x = self.act(x)
        return x
