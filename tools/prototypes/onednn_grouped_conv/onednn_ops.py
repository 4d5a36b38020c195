"""MindSpore aot custom ops wrapping libonednn_conv.so (prototype)."""
import os
import mindspore as ms
from mindspore import nn, ops

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libonednn_conv.so")


def _out_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


class OneDnnConv(nn.Cell):
    """conv2d(x, weight, stride, padding=k//2, groups) through oneDNN, with a bprop of two custom ops."""

    def __init__(self, x_shape, w_shape, stride):
        super().__init__()
        n, c, h, w = x_shape
        o, _, k, _ = w_shape
        p = k // 2
        y_shape = (n, o, _out_size(h, k, stride, p), _out_size(w, k, stride, p))
        f32 = ms.float32
        self.fwd = ops.Custom(LIB + ":conv_fwd", out_shape=lambda a, b: y_shape,
                              out_dtype=lambda a, b: f32, func_type="aot")
        self.bwd_data = ops.Custom(LIB + ":conv_bwd_data", out_shape=lambda a, b: tuple(x_shape),
                                   out_dtype=lambda a, b: f32, func_type="aot")
        self.bwd_weights = ops.Custom(LIB + ":conv_bwd_weights", out_shape=lambda a, b: tuple(w_shape),
                                      out_dtype=lambda a, b: f32, func_type="aot")

    def construct(self, x, weight):
        return self.fwd(x, weight)

    def bprop(self, x, weight, out, dout):
        dweight = self.bwd_weights(dout, x)
        dx = self.bwd_data(ops.depend(dout, dweight), weight)
        return dx, dweight
