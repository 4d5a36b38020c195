"""The Selective Kernel (SK) convolution, Li et al. 2019, Section 3.1 (Split, Fuse, Select).

The unit's pooling of the paths' sum and its selection come from the `Layers` it is built with
(`src.layers.create_layers`); `PathSumPool` and `ScaledPathSum` here are MindSpore's own ops.
"""
from mindspore import nn, ops

from src.layers.conv import ConvBNAct


def attention_width(channels: int, reduction: int, min_width: int) -> int:
    """The fuse width d = max(C / r, L) of Eq. (4)."""
    return max(channels // reduction, min_width)


# Larger maps are scaled through an explicit `broadcast_to` on the CPU (see `scale_channels`):
# 1 MB in fp32, so that the directly multiplied maps keep at most 4 MB each. At batch 32 that is
# every SK map at 32x32 and none at 224x224.
BROADCAST_MUL_MAX_ELEMENTS = 2**18


class SelectiveKernelAttention(nn.Cell):
    """Fuse and Select: softmax weights over the paths, one vector of C weights per path.

    Fuse (Eq. 1-4): U = sum of paths, s = global average of U, z = ReLU(BN(fc(s))).
    Select (Eq. 5): per-path fc layers give the logits, followed by a softmax across paths.
    The per-path fcs A, B, ... are stored as one fc whose rows are [A; B; ...] (the same
    function, and the layout of timm's `fc_select`, so pretrained weights map 1:1).
    """

    def __init__(self, channels: int, paths: int, width: int, fold_bn: bool = False, *, layers):
        super().__init__()
        self.paths = paths
        self.channels = channels
        self.bn_folds_into = "fc_reduce"  # the layer whose weight `fold_batchnorm` scales
        self.fc_reduce = nn.Dense(channels, width, has_bias=False)
        self.bn = layers.batchnorm(width, fold_bn, dims=1)
        self.act = nn.ReLU()
        self.fc_select = nn.Dense(width, channels * paths, has_bias=False)
        self.softmax = nn.Softmax(axis=1)

    def construct(self, s):
        """The weights from s (B, C), the global average of U."""
        z = self.act(self.bn(self.fc_reduce(s)))  # Eq. (3)
        logits = self.fc_select(z).reshape(-1, self.paths, self.channels)
        return self.softmax(logits)  # (B, paths, C), Eq. (5)


class PathSumPool(nn.Cell):
    """The Fuse step's global average of the paths' sum, s = mean over H, W of U = sum of paths (Eq. 1-2)."""

    def construct(self, outputs):
        # Sums of the path outputs, not a stack reduced over its path axis: the stack copies
        # every output, and its sum over a middle axis was ~8% of a CPU train step (profiled).
        fused = outputs[0]
        for output in outputs[1:]:
            fused = fused + output
        return fused.mean(axis=(2, 3))  # (B, C)


class ScaledPathSum(nn.Cell):
    """The Select step (Eq. 5-6): sum over paths m of output_m times its weights (B, C), from weights (B, paths, C).

    Args:
        explicit_broadcast: scale large maps through `broadcast_to` (see `scale_channels`).
    """

    def __init__(self, explicit_broadcast: bool):
        super().__init__()
        self.explicit_broadcast = explicit_broadcast

    def construct(self, outputs, weights):
        channels = outputs[0].shape[1]
        # One Split into per-path (B, C, 1, 1) weights; indexing `weights[:, m]` is a StridedSlice
        # per path, 4x slower on the CPU at 1x1 pixels (measured).
        weights = ops.split(weights.reshape(weights.shape[0], -1, 1, 1), channels, 1)
        selected = scale_channels(outputs[0], weights[0], self.explicit_broadcast)
        for index in range(1, len(outputs)):
            selected = selected + scale_channels(outputs[index], weights[index], self.explicit_broadcast)
        return selected


class SelectiveKernelConv(nn.Cell):
    """An SK unit with M paths; path m is a 3x3 grouped conv with dilation m+1.

    The paper's 5x5 kernel is realised as a 3x3 conv with dilation 2 (Section 3.1, "for
    further efficiency"). Each path is a grouped conv, BN and ReLU (Split); the stride is
    applied in every path.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 32,
                 paths: int = 2, reduction: int = 16, min_width: int = 32, fold_bn: bool = False, *,
                 layers):
        super().__init__()
        self.paths = nn.CellList([
            ConvBNAct(in_channels, out_channels, 3, stride=stride, dilation=m + 1, groups=groups,
                      fold_bn=fold_bn, layers=layers)
            for m in range(paths)
        ])
        self.pool = layers.sk_pool(paths)
        self.attention = SelectiveKernelAttention(out_channels, paths,
                                                  attention_width(out_channels, reduction, min_width), fold_bn,
                                                  layers=layers)
        self.select = layers.sk_select(paths)

    def construct(self, x):
        # A tuple, not a list: MindSpore's ONNX exporter has no operator for a graph-built list.
        outputs = tuple([path(x) for path in self.paths])
        return self.select(outputs, self.attention(self.pool(outputs)))


def scale_channels(x, channel_weights, explicitly: bool):
    """x (B, C, H, W) times channel_weights (B, C, 1, 1); if `explicitly`, large maps through `broadcast_to`.

    MindSpore 2.10's CPU broadcasting `Mul` keeps a buffer of 4x its output's size per kernel
    for as long as the graph lives, a same-shape `Mul` none (measured): at 224x224 and batch 32
    that was ~5 GB of SKNet-50's training peak. The extra `BroadcastTo` kernel cost 5% of eval
    at 32x32 (paired runs), where the kept buffers are small, so maps of at most
    `BROADCAST_MUL_MAX_ELEMENTS` multiply directly. Other backends broadcast natively, and the
    plain `Mul` keeps exported graphs to ops that every runtime has.
    """
    if explicitly and x.size > BROADCAST_MUL_MAX_ELEMENTS:
        return x * ops.broadcast_to(channel_weights, x.shape)
    return x * channel_weights
