"""`conv_impl onednn`'s convolution: oneDNN's, with its gradients, where it wins; the fast path's GEMMs elsewhere.

MindSpore's own CPU convolution runs oneDNN in plain NCHW layout, which is slow for grouped and dilated
3x3 convs (docs/performance.md). `OneDnnConv` calls the same library through three MindSpore aot custom
ops (`onednn_conv.cc`, in the library of `ops_library.py`) that let oneDNN choose its blocked or
NHWC layouts and reorder inside the call, as PyTorch does. The forward op's bprop calls the backward-data
and backward-weights ops, so the gradients never go through MindSpore's NCHW kernels either.
`OneDnnPointwiseConv` computes small images' ungrouped 1x1 convs the same way, as one oneDNN GEMM.
`OneDnnPathConv` picks between them and the fast path's GEMMs per shape.
"""
import numpy as np
import mindspore as ms
from mindspore import nn, ops

from src.layers.conv import NativeConv, add_bias_relu
from src.layers.conv_geometry import output_size, same_padding
from src.layers.cpu.gemm_conv import NATIVE_POINTWISE_MIN_PIXELS, conv2d_pointwise, conv2d_small_image
from src.layers.cpu.ops_library import onednn_library, onednn_threads
from src.utils.errors import UserError

# Training on maps of at most 2x2 pixels, `conv2d_small_image` beats oneDNN (its backward passes: forward +
# backward 0.41-0.81x for oneDNN on 32-group 3x3 convs, batch 32, 2x2 and 1x1 maps), while oneDNN's forward
# alone is 1.4x faster there, so inference keeps oneDNN. From 4x4 up oneDNN wins both (1.2-4.0x).
ONEDNN_TRAIN_SMALL_IMAGE_MAX_PIXELS = 4


def _float32_only(*dtypes):
    for dtype in dtypes[:2]:
        if dtype.element_type() != ms.float32:  # the infer sees tensor types, e.g. Tensor[Float32]
            raise UserError(f"conv_impl onednn computes in float32 only, got {dtype}; use --amp_level O0 "
                            "(the CPU default) with it")
    return ms.float32


class OneDnnPathConv(NativeConv):
    """The conv of `conv_impl onednn`, from the layer's weight: `OneDnnConv` for every conv but an ungrouped 1x1,
    except in training on maps of at most `ONEDNN_TRAIN_SMALL_IMAGE_MAX_PIXELS` pixels (`conv2d_small_image`);
    an ungrouped 1x1 is `OneDnnPointwiseConv` below `NATIVE_POINTWISE_MIN_PIXELS` output pixels (eval 1.09x,
    train 1.05x at 32x32; from 16 pixels up the native kernel wins, 0.88x with 8x8 maps) and
    `conv2d_pointwise` from there up. In inference `with_bias` adds a folded BatchNorm's shift and the ReLU
    inside the oneDNN op."""

    def __init__(self, kernel_size: int, stride: int, dilation: int, groups: int):
        super().__init__(kernel_size, stride, dilation, groups)
        self.pointwise = kernel_size == 1 and groups == 1
        self.onednn = OneDnnPointwiseConv(stride) if self.pointwise else OneDnnConv(kernel_size, stride, dilation,
                                                                                      groups)

    def construct(self, x, weight):
        if self.pointwise:
            if self._small_pointwise(x.shape):
                return self.onednn(x, weight)
            return conv2d_pointwise(x, weight, self.stride)
        if self.training and x.shape[2] * x.shape[3] <= ONEDNN_TRAIN_SMALL_IMAGE_MAX_PIXELS:
            return conv2d_small_image(x, weight, self.stride, self.padding, self.dilation, self.groups)
        return self.onednn(x, weight)

    def with_bias(self, x, weight, bias, relu: bool):
        if not self.pointwise or self._small_pointwise(x.shape):
            return self.onednn.epilogue(x, weight, bias, relu)
        return add_bias_relu(self.construct(x, weight), bias, relu)

    def _small_pointwise(self, shape) -> bool:
        """Whether an ungrouped 1x1 conv of an input of `shape` has fewer than NATIVE_POINTWISE_MIN_PIXELS outputs."""
        pixels = output_size(shape[2], 1, self.stride, 0, 1) * output_size(shape[3], 1, self.stride, 0, 1)
        return pixels < NATIVE_POINTWISE_MIN_PIXELS


class CustomConv(nn.Cell):
    """A convolution computed by three aot ops of the library, `{prefix}_forward`, `_backward_data` and
    `_backward_weights`, the forward op carrying the gradient; plus the inference `Epilogue` (`_forward_epilogue`).

    Args:
        prefix: the ops' name prefix in the library.
        geometry: the ints every op takes as its third input (aot ops have no attributes).
        forward_shape, weight_shape: the out_shape functions of the forward and backward-weights ops.
        key: what tells this conv's shapes apart (`name_apart`).
    """

    def __init__(self, prefix: str, geometry: list, forward_shape, weight_shape, key: str):
        super().__init__()
        library = onednn_library()
        self.geometry = ms.Tensor(np.array(geometry, dtype=np.int64))
        self.backward_data = ops.Custom(f"{library}:{prefix}_backward_data",
                                        out_shape=lambda dout, weight, geometry, x: x,
                                        out_dtype=_float32_only, func_type="aot")
        self.backward_weights = ops.Custom(f"{library}:{prefix}_backward_weights", out_shape=weight_shape,
                                           out_dtype=_float32_only, func_type="aot")
        self.forward = ops.Custom(f"{library}:{prefix}_forward", out_shape=forward_shape,
                                  out_dtype=_float32_only, func_type="aot", bprop=self._gradients)
        self.epilogue = Epilogue(f"{library}:{prefix}_forward_epilogue", forward_shape, geometry)
        name_apart(key, self.forward, self.backward_data, self.backward_weights, self.epilogue.op)

    def construct(self, x, weight):
        return self.forward(x, weight, self.geometry)

    def _gradients(self, x, weight, geometry, out, dout):
        dx = self.backward_data(dout, weight, geometry, x)
        dweight = self.backward_weights(dout, x, geometry)
        return dx, dweight, ops.zeros_like(geometry)


class OneDnnConv(CustomConv):
    """conv2d(x, weight) with padding dilation*(k-1)//2, computed by oneDNN's convolution, with its gradients.

    Args:
        kernel_size, stride, dilation, groups: of the convolution (the weight is (out, in / groups, k, k)).
    """

    def __init__(self, kernel_size: int, stride: int, dilation: int, groups: int):
        padding = same_padding(kernel_size, dilation)

        def forward_shape(x, weight, geometry):
            return (x[0], weight[0], output_size(x[2], kernel_size, stride, padding, dilation),
                    output_size(x[3], kernel_size, stride, padding, dilation))

        def weight_shape(dout, x, geometry):
            return (dout[1], x[1] // groups, kernel_size, kernel_size)

        super().__init__("onednn_conv", [stride, dilation, onednn_threads()], forward_shape, weight_shape,
                         key=f"k{kernel_size}s{stride}d{dilation}g{groups}")


class Epilogue(nn.Cell):
    """Inference only: conv(x, weight) + bias, then ReLU if `relu`, in one call of the conv's `*_epilogue` op: a
    folded BatchNorm's shift and the ReLU after it cost two MindSpore kernels per conv otherwise (eval 32x32:
    ~1.1x without them). No gradient: the folded network is never trained."""

    def __init__(self, func: str, forward_shape, geometry: list):
        super().__init__()
        self.op = ops.Custom(func, out_shape=lambda x, weight, geometry, bias: forward_shape(x, weight, geometry),
                             out_dtype=_float32_only, func_type="aot")
        # the geometry with its last value, relu, 0 or 1
        self.linear = ms.Tensor(np.array([*geometry, 0], dtype=np.int64))
        self.rectified = ms.Tensor(np.array([*geometry, 1], dtype=np.int64))

    def construct(self, x, weight, bias, relu: bool):
        return self.op(x, weight, self.rectified if relu else self.linear, bias)


def name_apart(key: str, *custom_ops) -> None:
    """Give custom ops an attribute `key` that tells their shapes apart.

    Gradients are given to the ops (`ops.Custom(..., bprop=)`), not as a Cell's `bprop`: a Cell's bprop makes
    MindSpore load every parameter a second time for the optimizer and copy both loads (`TensorMove`) at every
    step (~200 copies per SKNet-50 step; training 1.07x faster without them, 32x32, paired). MindSpore keeps
    one bprop per primitive name and attributes, so ops whose shapes differ must differ in an attribute.
    """
    for op in custom_ops:
        op.add_prim_attr("sknet_shape_key", key)


class OneDnnPointwiseConv(CustomConv):
    """An ungrouped 1x1 conv2d(x, weight) with a stride, as one oneDNN GEMM (`pointwise_conv.cc`), with its
    gradients; for small images, where MindSpore's own 1x1 conv is slow and its GEMM form copies the weight and
    the activations around the GEMM at every call."""

    def __init__(self, stride: int):
        def forward_shape(x, weight, geometry):
            return (x[0], weight[0], output_size(x[2], 1, stride, 0, 1), output_size(x[3], 1, stride, 0, 1))

        def weight_shape(dout, x, geometry):
            return (dout[1], x[1], 1, 1)

        super().__init__("pointwise_conv", [stride, onednn_threads()], forward_shape, weight_shape, key=f"s{stride}")
