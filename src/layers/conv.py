"""The convolution layers every SKNet conv is built from: `Conv2d` and `ConvBNAct`.

A `Conv2d` owns one `weight` parameter; the cell that computes the conv from it comes from the `Layers` it is
built with (`src.layers.create_layers`), so parameter names and shapes never depend on the device or the
algorithm, and checkpoints move freely between Ascend, GPU and CPU. `NativeConv` is MindSpore's own conv;
the other conv_impls subclass it.
"""
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeNormal, initializer

from src.layers.conv_geometry import same_padding


def add_bias_relu(x, bias, relu: bool):
    """x + bias (per channel, axis 1), then ReLU if `relu`: a folded BatchNorm and the activation after it."""
    x = ops.bias_add(x, bias)
    return ops.relu(x) if relu else x


class NativeConv(nn.Cell):
    """conv2d(x, weight) by `ops.conv2d`, the vendor kernels, with padding dilation*(k-1)//2.

    Padding is always explicit (`pad_mode='pad'`), never `'same'`: a dilated conv exported with
    `'same'` becomes ONNX `auto_pad=SAME_UPPER`, which ONNX Runtime refuses.
    """

    def __init__(self, kernel_size: int, stride: int, dilation: int, groups: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.groups = groups
        self.padding = same_padding(kernel_size, dilation)

    def construct(self, x, weight):
        return ops.conv2d(x, weight, None, self.stride, "pad", self.padding, self.dilation, self.groups)

    def with_bias(self, x, weight, bias, relu: bool):
        """Inference: conv(x) + bias (per output channel), then ReLU if `relu`."""
        return add_bias_relu(self.construct(x, weight), bias, relu)


class Conv2d(nn.Cell):
    """A bias-free 2-D convolution with explicit symmetric padding (PyTorch semantics), computed by
    `layers.conv(...)`, `layers` being the `Layers` of `src.layers.create_layers` (as for every block here).
    The weight is Kaiming-normal (fan_out, ReLU), as in the paper's ResNeXt baseline."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, *, layers):
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
        shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        self.weight = Parameter(initializer(HeNormal(mode="fan_out", nonlinearity="relu"), shape), name="weight")
        self.compute = layers.conv(kernel_size, stride, dilation, groups)

    def construct(self, x):
        return self.compute(x, self.weight)

    def with_bias(self, x, bias, relu: bool):
        """Inference: conv(x) + bias, then ReLU if `relu`; one op where the conv_impl fuses them."""
        return self.compute.with_bias(x, self.weight, bias, relu)

    def extend_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"dilation={self.dilation}, groups={self.groups}, compute={type(self.compute).__name__}")


class ConvBNAct(nn.Cell):
    """Conv2d -> BatchNorm -> optional ReLU; the unit that every SKNet conv is built from.

    With `fold_bn` (inference only) the BatchNorm is a bias folded into the conv (`src.layers.fold_batchnorm`),
    added with the ReLU by `Conv2d.with_bias`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, act: bool = True, zero_init_bn: bool = False,
                 fold_bn: bool = False, *, layers):
        super().__init__()
        self.bn_folds_into = "conv"  # the layer whose weight `fold_batchnorm` scales
        self.conv = Conv2d(in_channels, out_channels, kernel_size, stride, dilation, groups, layers=layers)
        self.bn = layers.batchnorm(out_channels, fold_bn, gamma_init="zeros" if zero_init_bn else "ones")
        self.act = nn.ReLU() if act else None
        self.folded = fold_bn

    def construct(self, x):
        if self.folded:
            return self.conv.with_bias(x, self.bn.bias, self.act is not None)
        x = self.bn(self.conv(x))
        if self.act is not None:
            x = self.act(x)
        return x
