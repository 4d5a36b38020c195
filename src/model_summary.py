"""Parameters and multiply-adds of one image, counted from the network's layers (no forward pass).

The walk follows each block's data flow with the image size: a conv costs
k*k*(C_in/groups)*C_out multiply-adds per output pixel, a dense layer C_in*C_out. BatchNorm, ReLU,
pooling, the softmax and the additions are not counted, as in the paper's and timm's figures
(SKNet-50 at 224x224 with 1000 classes: 4.47 G multiply-adds, which the paper calls GFLOPs).
"""
from mindspore import nn

from src.layers.conv import Conv2d, ConvBNAct
from src.layers.conv_geometry import output_size
from src.layers.selective_kernel import SelectiveKernelConv
from src.sknet50 import SKBottleneck, SKNet, Stem


def _conv(conv: Conv2d, size: int) -> tuple[int, int]:
    out = output_size(size, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
    per_pixel = conv.kernel_size ** 2 * (conv.in_channels // conv.groups) * conv.out_channels
    return per_pixel * out * out, out


def _dense(dense: nn.Dense) -> int:
    return dense.in_channels * dense.out_channels


def _conv_bn_act(block: ConvBNAct, size: int) -> tuple[int, int]:
    return _conv(block.conv, size)


def _stem(stem: Stem, size: int) -> tuple[int, int]:
    macs, size = _conv(stem.conv, size)
    if stem.pool is not None:
        size = output_size(size, 3, 2, 1)  # the 3x3/2 max-pool, padding 1
    return macs, size


def _selective_kernel(unit: SelectiveKernelConv, size: int) -> tuple[int, int]:
    paths = [_conv(path.conv, size) for path in unit.paths]
    attention = unit.attention
    return sum(macs for macs, _ in paths) + _dense(attention.fc_reduce) + _dense(attention.fc_select), paths[0][1]


def _bottleneck(unit: SKBottleneck, size: int) -> tuple[int, int]:
    macs1, _ = _conv_bn_act(unit.conv1, size)
    macs2, out = _selective_kernel(unit.sk_conv, size)
    macs3, _ = _conv_bn_act(unit.conv3, out)
    shortcut = 0 if unit.downsample is None else _conv_bn_act(unit.downsample, size)[0]
    return macs1 + macs2 + macs3 + shortcut, out


def multiply_adds(net: SKNet, image_size: int) -> int:
    """Multiply-adds of one image of image_size x image_size through `net`."""
    total, size = _stem(net.stem, image_size)
    for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
        for unit in stage.cell_list:
            macs, size = _bottleneck(unit, size)
            total += macs
    return total + _dense(net.fc)


def parameter_count(net: nn.Cell) -> int:
    """Trainable parameters (the BatchNorm running statistics are not parameters in this sense)."""
    return sum(p.size for p in net.trainable_params())


def summary_line(net: SKNet, arch: str, image_size: int) -> str:
    macs = multiply_adds(net, image_size)
    return (f"model {arch}: {parameter_count(net):,} parameters, {macs / 1e9:.3g} G multiply-adds "
            f"(GMACs; the paper's 'GFLOPs') per {image_size}x{image_size} image")
