"""A grouped convolution computed as one ungrouped convolution per group (conv_impl `split`, opt-in on Ascend).

MindSpore's documentation of `nn.Conv2d` and `ops.Conv2D` says that on Ascend a grouped convolution is
supported only in the depthwise case (in = out = groups), although mindcv trains group-32 convs on Ascend
910 natively, so `auto` is `native` there. If a CANN refuses SKNet-50's group-32 convs, `split` computes
each as 32 convs, as the model zoo's ResNeXt and the original SKNet did by hand, but on slices of the
layer's one `weight` parameter, so parameter names, shapes and checkpoints are those of `native` and the
gradients flow into the same parameter.
"""
from mindspore import ops

from src.layers.conv import NativeConv


def conv2d_split_groups(x, weight, stride: int, padding: int, dilation: int, groups: int):
    """`ops.conv2d(x, weight, groups=groups)` as `groups` ungrouped convs on channel slices, concatenated.

    Group g reads input channels [g*C_in/G, (g+1)*C_in/G) and writes output channels
    [g*C_out/G, (g+1)*C_out/G) with weight rows from the same output range, exactly as a grouped conv.
    """
    inputs = ops.split(x, x.shape[1] // groups, axis=1)
    weights = ops.split(weight, weight.shape[0] // groups, axis=0)
    outputs = [ops.conv2d(inputs[g], weights[g], None, stride, "pad", padding, dilation, 1) for g in range(groups)]
    return ops.cat(outputs, axis=1)


class SplitGroupedConv(NativeConv):
    """The conv of `conv_impl split`: a grouped conv by `conv2d_split_groups`, an ungrouped one natively."""

    def construct(self, x, weight):
        if self.groups > 1:
            return conv2d_split_groups(x, weight, self.stride, self.padding, self.dilation, self.groups)
        return super().construct(x, weight)
