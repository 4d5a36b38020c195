"""A grouped convolution computed as one ungrouped convolution per group (conv_impl `split`).

MindSpore's documentation of `nn.Conv2d` and `ops.Conv2D` (r1.9 to r2.4 and later) says that on
Ascend a grouped convolution is supported only in the depthwise case (in = out = groups). SKNet-50's
3x3 convs have groups=32 and 4-32 channels per group, so on Ascend they may not compile. The model
zoo's ResNeXt and the original SKNet split such convs by hand on Ascend; this does the same, but on
slices of the layer's one `weight` parameter, so parameter names, shapes and checkpoints are those of
`native` and the gradients flow into the same parameter.
"""
from mindspore import ops


def conv2d_split_groups(x, weight, stride: int, padding: int, dilation: int, groups: int):
    """`ops.conv2d(x, weight, groups=groups)` as `groups` ungrouped convs on channel slices, concatenated.

    Group g reads input channels [g*C_in/G, (g+1)*C_in/G) and writes output channels
    [g*C_out/G, (g+1)*C_out/G) with weight rows from the same output range, exactly as a grouped conv.
    """
    inputs = ops.split(x, x.shape[1] // groups, axis=1)
    weights = ops.split(weight, weight.shape[0] // groups, axis=0)
    outputs = [ops.conv2d(inputs[g], weights[g], None, stride, "pad", padding, dilation, 1) for g in range(groups)]
    return ops.cat(outputs, axis=1)
