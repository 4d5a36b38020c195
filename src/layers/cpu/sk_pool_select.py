"""The two-path SK unit's pooling and selection, and their gradients, by C++ ops (`sk_pool_select.cc`).

MindSpore computes `mean(a + b)` and `a * w0 + b * w1` with their gradients as ~17 CPU kernels over the full
maps per unit (Add, ReduceMean, BroadcastTo, Mul, ReduceSum, Tile, AddN): at 224x224 and batch 32 that was
~3 s of a ~25 s training step (docs/performance.md). Each op here is one pass over the maps. The selection
uses that the softmax weights of two paths sum to 1: a * w0 + b * (1 - w0) = b + (a - b) * w0.
Both take the interface of the SK unit's generic `PathSumPool` and `ScaledPathSum` (src.layers.selective_kernel).
"""
from mindspore import nn, ops

from src.layers.cpu.ops_library import onednn_library, thread_count_input


def _planes(a, *_):
    return (a[0], a[1])


def _same_as_first(a, *_):
    return a


class PooledSum(nn.Cell):
    """The paths' outputs (a, b) -> mean over H, W of a + b, shape (N, C): the Fuse step's global average (Eq. 1-2)."""

    def __init__(self):
        super().__init__()
        library = onednn_library()
        self.threads = thread_count_input()
        self.backward = ops.Custom(f"{library}:sk_pool_backward", out_shape=lambda ds, a, threads: a,
                                   out_dtype=_same_as_first, func_type="aot")
        # The gradient is the op's, not a Cell bprop, for the reason in onednn_conv.name_apart.
        self.forward = ops.Custom(f"{library}:sk_pool_forward", out_shape=_planes, out_dtype=_same_as_first,
                                  func_type="aot", bprop=self._gradients)

    def construct(self, outputs):
        return self.forward(outputs[0], outputs[1], self.threads)

    def _gradients(self, a, b, threads, out, dout):
        spread = self.backward(dout, a, threads)  # the same gradient reaches both paths
        return spread, spread, ops.zeros_like(threads)


class SelectOfTwo(nn.Cell):
    """((a, b), weights (N, 2, C)) -> b + (a - b) * w with w (N, C) the first path's softmax weight: the Select
    step (Eq. 6)."""

    def __init__(self):
        super().__init__()
        library = onednn_library()
        self.threads = thread_count_input()
        self.backward = ops.Custom(f"{library}:sk_select_backward",
                                   out_shape=lambda dy, a, b, w, threads: (a, a, w),
                                   out_dtype=lambda dy, a, b, w, threads: (dy, dy, dy), func_type="aot")
        self.forward = ops.Custom(f"{library}:sk_select_forward", out_shape=_same_as_first,
                                  out_dtype=_same_as_first, func_type="aot", bprop=self._gradients)

    def construct(self, outputs, weights):
        first = ops.split(weights, 1, 1)[0].reshape(weights.shape[0], -1)
        return self.forward(outputs[0], outputs[1], first, self.threads)

    def _gradients(self, a, b, w, threads, out, dout):
        da, db, dw = self.backward(dout, a, b, w, threads)
        return da, db, dw, ops.zeros_like(threads)
