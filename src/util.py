"""Convolution building blocks shared by every SKNet layer.

Every convolution of the network goes through `Conv2d` here, so that the parameter
names and shapes never depend on the device or on the kernel implementation: a
checkpoint written on Ascend loads on a GPU or a CPU, and back.
"""
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeNormal, initializer

CONV_IMPLS = ("auto", "native")


def resolve_conv_impl(conv_impl: str, device_target: str) -> str:
    """Map `auto` to the implementation that is fastest on `device_target`."""
    if conv_impl not in CONV_IMPLS:
        raise ValueError(f"conv_impl must be one of {', '.join(CONV_IMPLS)}, got {conv_impl!r}")
    if conv_impl == "auto":
        return "native"
    return conv_impl


class Conv2d(nn.Cell):
    """A bias-free 2-D convolution with explicit symmetric padding (PyTorch semantics).

    Padding is always explicit (`pad_mode='pad'`), never `'same'`: a dilated conv exported
    with `'same'` becomes ONNX `auto_pad=SAME_UPPER`, which ONNX Runtime refuses.
    The weight is Kaiming-normal (fan_out, ReLU), as in the paper's ResNeXt baseline.
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
        self.padding = dilation * (kernel_size - 1) // 2
        self.conv_impl = conv_impl
        shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        self.weight = Parameter(initializer(HeNormal(mode="fan_out", nonlinearity="relu"), shape), name="weight")

    def construct(self, x):
        return ops.conv2d(x, self.weight, None, self.stride, "pad", self.padding, self.dilation, self.groups)

    def extend_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"dilation={self.dilation}, groups={self.groups}, impl={self.conv_impl}")


class ConvBNAct(nn.Cell):
    """Conv2d -> BatchNorm -> optional ReLU; the unit that every SKNet conv is built from."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, act: bool = True, zero_init_bn: bool = False,
                 conv_impl: str = "native"):
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, kernel_size, stride, dilation, groups, conv_impl)
        self.bn = nn.BatchNorm2d(out_channels, gamma_init="zeros" if zero_init_bn else "ones")
        self.act = nn.ReLU() if act else None

    def construct(self, x):
        x = self.bn(self.conv(x))
        if self.act is not None:
            x = self.act(x)
        return x
