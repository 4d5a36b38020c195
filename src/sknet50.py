"""SKNet-50 (SK-ResNeXt-50, 32x4d), Li et al., "Selective Kernel Networks", CVPR 2019, Table 1.

The network is a ResNeXt-50 (32x4d) whose 3x3 grouped convs are Selective Kernel units with
M=2 paths, G=32, r=16 and L=32. All widths and depths are arguments, so small variants can be
built for tests; a variant is one factory function in `MODELS`.
"""
from typing import Callable, Sequence

from mindspore import nn

from src.layers.conv import ConvBNAct
from src.layers.create_layers import Layers, create_layers
from src.layers.drop_path import DropPath
from src.layers.selective_kernel import SelectiveKernelConv

STEM_TYPES = ("imagenet", "cifar")


class SKBottleneck(nn.Cell):
    """1x1 conv-BN-ReLU -> SK conv (strided) -> 1x1 conv-BN (-> drop path), + shortcut, then ReLU."""

    def __init__(self, in_channels: int, inner_channels: int, out_channels: int, stride: int,
                 groups: int, sk_paths: int, sk_reduction: int, sk_min_width: int,
                 zero_init_last: bool, layers: Layers, fold_bn: bool, drop_path_rate: float = 0.0):
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, inner_channels, 1, fold_bn=fold_bn, layers=layers)
        self.sk_conv = SelectiveKernelConv(inner_channels, inner_channels, stride=stride, groups=groups,
                                           paths=sk_paths, reduction=sk_reduction, min_width=sk_min_width,
                                           fold_bn=fold_bn, layers=layers)
        self.conv3 = ConvBNAct(inner_channels, out_channels, 1, act=False, zero_init_bn=zero_init_last,
                               fold_bn=fold_bn, layers=layers)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = ConvBNAct(in_channels, out_channels, 1, stride=stride, act=False, fold_bn=fold_bn,
                                        layers=layers)
        self.relu = nn.ReLU()
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else None

    def construct(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv3(self.sk_conv(self.conv1(x)))
        if self.drop_path is not None:
            out = self.drop_path(out)
        return self.relu(out + shortcut)


class Stem(ConvBNAct):
    """`imagenet`: 7x7/2 conv-BN-ReLU + 3x3/2 max-pool (pad 1), as in the paper, for 224x224.
    `cifar`: a 3x3/1 conv-BN-ReLU and no pool, which keeps the resolution of 32x32 inputs.
    The conv-BN-ReLU is a ConvBNAct's (the same `conv` and `bn` parameters, the same folded form)."""

    def __init__(self, stem_type: str, out_channels: int, layers: Layers, fold_bn: bool = False):
        if stem_type not in STEM_TYPES:
            raise ValueError(f"stem_type must be one of {', '.join(STEM_TYPES)}, got {stem_type!r}")
        imagenet = stem_type == "imagenet"
        super().__init__(3, out_channels, 7 if imagenet else 3, stride=2 if imagenet else 1, fold_bn=fold_bn,
                         layers=layers)
        self.stem_type = stem_type
        self.pool = layers.max_pool(3, 2, 1) if imagenet else None  # after the ReLU: inputs >= 0

    def construct(self, x):
        x = super().construct(x)
        if self.pool is not None:
            x = self.pool(x)
        return x


class SKNet(nn.Cell):
    """A ResNeXt-style network of SK bottleneck units.

    Args:
        layers: units per stage, e.g. [3, 4, 6, 3] for SKNet-50.
        out_widths: output channels of each stage's units (256, 512, 1024, 2048).
        inner_widths: channels inside each unit, i.e. of the SK conv (128, 256, 512, 1024).
        class_num: classifier outputs.
        groups: cardinality G of the grouped convs in the SK unit.
        stem_type: `imagenet` or `cifar` (see `Stem`).
        stem_width: channels of the stem conv.
        sk_paths, sk_reduction, sk_min_width: M, r and L of the SK unit.
        zero_init_last: start each unit's last BN at gamma=0 (off for the paper's recipe).
        conv_impl: `native`, `split`, `fast` or `onednn`: the layers the network is built from
            (`src.layers.create_layers`); parameters never depend on it. Resolve `auto` from the device first
            (`src.utils.device.resolve_conv_impl`).
        fold_bn: the inference form, every BatchNorm folded into the layer before it; fill it from
            a trained network with `src.layers.fold_batchnorm.fold_batchnorm`. Never trained.
        drop_path_rate: stochastic depth of the last unit; unit i of n drops its branch with rate
            drop_path_rate * i / (n - 1), as timm's ResNet (training only; no parameters).
    """

    def __init__(self, layers: Sequence[int], out_widths: Sequence[int], inner_widths: Sequence[int],
                 class_num: int, groups: int = 32, stem_type: str = "imagenet", stem_width: int = 64,
                 sk_paths: int = 2, sk_reduction: int = 16, sk_min_width: int = 32,
                 zero_init_last: bool = False, conv_impl: str = "native", fold_bn: bool = False,
                 drop_path_rate: float = 0.0):
        super().__init__()
        if not len(layers) == len(out_widths) == len(inner_widths) == 4:
            raise ValueError("layers, out_widths and inner_widths must have 4 entries, one per stage")
        if class_num < 1:
            raise ValueError(f"class_num must be positive, got {class_num}")
        factory = create_layers(conv_impl)  # the cells every block is built from, chosen once
        self.stem = Stem(stem_type, stem_width, factory, fold_bn)
        in_channels = stem_width
        total = sum(layers)
        drop_rates = iter([drop_path_rate * index / max(total - 1, 1) for index in range(total)])
        stages = []
        for index, (depth, out_width, inner_width) in enumerate(zip(layers, out_widths, inner_widths)):
            units = []
            for unit in range(depth):
                stride = 2 if index > 0 and unit == 0 else 1
                units.append(SKBottleneck(in_channels, inner_width, out_width, stride, groups, sk_paths,
                                          sk_reduction, sk_min_width, zero_init_last, factory, fold_bn,
                                          next(drop_rates)))
                in_channels = out_width
            stages.append(nn.SequentialCell(units))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Dense(in_channels, class_num)
        self.num_features = in_channels

    def forward_features(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(axis=(2, 3))  # (B, C): never squeezes the batch axis away

    def construct(self, x):
        return self.fc(self.forward_features(x))


def sknet50(class_num: int = 10, **kwargs) -> SKNet:
    """SKNet-50: SK-ResNeXt-50 (32x4d), 27.5M parameters with 1000 classes (paper, Table 2)."""
    return SKNet([3, 4, 6, 3], [256, 512, 1024, 2048], [128, 256, 512, 1024], class_num,
                 groups=32, sk_reduction=16, sk_min_width=32, **kwargs)


def sknet_tiny(class_num: int = 10, **kwargs) -> SKNet:
    """A narrow one-unit-per-stage SKNet for tests and smoke runs (G=4, r=4, L=8)."""
    return SKNet([1, 1, 1, 1], [32, 64, 128, 256], [16, 32, 64, 128], class_num,
                 groups=4, sk_reduction=4, sk_min_width=8, **kwargs)


MODELS: dict[str, Callable[..., SKNet]] = {"sknet50": sknet50, "sknet_tiny": sknet_tiny}


def create_model(arch: str, class_num: int, **kwargs) -> SKNet:
    """Build a registered variant by name."""
    if arch not in MODELS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(MODELS)}")
    return MODELS[arch](class_num, **kwargs)
