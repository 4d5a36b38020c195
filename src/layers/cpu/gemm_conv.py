"""The `fast` convolutions: GEMM algorithms that MindSpore's CPU backend runs well, with MindSpore ops only.

MindSpore's CPU conv kernels run in plain NCHW layout and are 10-100x slower than im2col +
matmul for every conv of SKNet except the unstrided 1x1 (docs/performance.md). Each function
here computes exactly `ops.conv2d` from the same `weight`; `FastConv` picks one per shape:
- `GemmConv`: im2col (`ops.unfold`) + one batched GEMM per group, with a written-out backward;
- `conv2d_small_image`: images of at most 16 pixels as one dense GEMM per group, no im2col;
- `conv2d_pointwise`: the ungrouped 1x1 conv (native where that is fast, a GEMM elsewhere).
`fast` is the CPU path where `onednn` cannot be built (no C++ compiler); `onednn` uses the last two too.
"""
import numpy as np
from mindspore import Tensor, nn, ops
from mindspore.common import dtype as mstype
from mindspore.ops import constexpr

from src.layers.conv import NativeConv
from src.layers.conv_geometry import output_size

# Below this many output pixels per image, the CPU's native 1x1 conv (one small GEMM per
# image) loses to one GEMM over the whole batch; at 8x8 and above it wins (measured).
NATIVE_POINTWISE_MIN_PIXELS = 16


def _broadcasts_kernels(out_pixels: int, per_group: int) -> bool:
    """Which of two layouts of the grouped GEMM costs less memory traffic (measured):
    - broadcast the kernels over the batch: one copy of the weights per image, cheap when
      the images have many pixels;
    - fold the batch into the GEMM's columns: two transposes of the activations, cheap when
      the images have few pixels (deep stages; at 1x1 pixels the broadcast copy of the
      weights is out/groups times larger than the activations).
    """
    return out_pixels >= per_group


def _fold_batch(t):
    """(B, groups, rows, pixels) -> (groups, rows, B * pixels)."""
    batch, groups, rows, pixels = t.shape
    return t.transpose(1, 2, 0, 3).reshape(groups, rows, batch * pixels)


def _unfold_batch(t, batch: int):
    """(groups, rows, B * pixels) -> (B, groups, rows, pixels); the inverse of `_fold_batch`."""
    groups, rows, columns = t.shape
    return t.reshape(groups, rows, batch, columns // batch).transpose(2, 0, 1, 3)


def _batch_matmul(kernels, columns, out_pixels: int):
    """(groups, out/groups, K) x (B, groups, K, pixels) -> (B, groups, out/groups, pixels).

    The `BatchMatMul` primitive is used instead of `ops.matmul`, whose broadcasting backward
    adds two full transposes of the columns (measured: ~25% of the conv's train time).
    """
    batch, groups, depth, _ = columns.shape
    per_group = kernels.shape[1]
    if _broadcasts_kernels(out_pixels, per_group):
        kernels = ops.broadcast_to(kernels.expand_dims(0), (batch, groups, per_group, depth))
        return ops.BatchMatMul()(kernels, columns)
    return _unfold_batch(ops.BatchMatMul()(kernels, _fold_batch(columns)), batch)


def _im2col(x, kernel: int, stride: int, padding: int, dilation: int, groups: int):
    """(B, C, H, W) -> columns (B, groups, C/groups * k * k, H' * W').

    `unfold` lays each column out as (channel, kernel row, kernel column), the same order as
    the flattened `weight` of shape (out, in/groups, k, k), so group g of the columns meets
    group g of the weights without any transpose. A 1x1 conv needs no im2col, only the
    stride's subsampling.
    """
    batch, channels, height, width = x.shape
    out_pixels = (output_size(height, kernel, stride, padding, dilation)
                  * output_size(width, kernel, stride, padding, dilation))
    columns = x
    if kernel > 1 or stride > 1:
        columns = ops.unfold(x, kernel, dilation, padding, stride)  # (B, C*k*k, H'*W')
    return columns.reshape(batch, groups, channels // groups * kernel * kernel, out_pixels)


def _conv2d_gemm_and_columns(x, weight, stride: int, padding: int, dilation: int, groups: int):
    """`conv2d_gemm`, also returning its im2col columns."""
    batch, _, height, width = x.shape
    out_channels, _, kernel, _ = weight.shape
    columns = _im2col(x, kernel, stride, padding, dilation, groups)
    kernels = weight.reshape(groups, out_channels // groups, -1)
    out = _batch_matmul(kernels, columns, columns.shape[3])
    out = out.reshape(batch, out_channels, output_size(height, kernel, stride, padding, dilation),
                      output_size(width, kernel, stride, padding, dilation))
    return out, columns


def conv2d_gemm(x, weight, stride: int, padding: int, dilation: int, groups: int):
    """A (grouped) convolution as im2col (`ops.unfold`) followed by a batched GEMM."""
    return _conv2d_gemm_and_columns(x, weight, stride, padding, dilation, groups)[0]


# Im2col columns of at most this many elements (16 MB in fp32) are kept for the backward
# pass; larger ones are recomputed there (see `GemmConv`). At batch 32, all of SKNet-50's are
# below it at 32x32 (~0.1 GB in all; keeping them saves an `Im2Col` per conv), and all above it
# at 224x224 (~6 GB in all).
KEEP_COLUMNS_MAX_ELEMENTS = 4 * 2**20


class GemmConv(nn.Cell):
    """`conv2d_gemm(x, weight)`, whose backward pass recomputes large im2col columns.

    Automatic differentiation would keep every conv's columns alive from the forward pass
    to the backward one, and they are k*k times the conv's input (9x for a 3x3 conv): at
    224x224 and batch 32 that is ~6 GB, which made training peak 1.15x higher than with the
    native convs. Here the backward pass keeps only `x` (which the layer before keeps
    anyway) and unfolds it again, at the cost of one more `Im2Col` per conv; columns of at
    most `KEEP_COLUMNS_MAX_ELEMENTS` are kept instead. The `depend` on `dout` stops the
    scheduler from hoisting the recomputation into the forward pass, where its result would
    again live until the backward.

    When the columns are kept the cell returns `(out, columns)`, so that `bprop` receives
    them, and callers use `out` only; otherwise it returns `out` (a dummy second output would
    cost a zero-filled gradient of its size). `keeps_columns(x.shape)` tells which.
    """

    def __init__(self, kernel_size: int, stride: int, padding: int, dilation: int, groups: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.matmul_transpose_a = ops.BatchMatMul(transpose_a=True)
        self.matmul_transpose_b = ops.BatchMatMul(transpose_b=True)

    def construct(self, x, weight):
        out, columns = _conv2d_gemm_and_columns(x, weight, self.stride, self.padding, self.dilation, self.groups)
        if self.keeps_columns(x.shape):
            return out, columns
        return out

    def keeps_columns(self, shape) -> bool:
        batch, channels, height, width = shape
        kernel = self.kernel_size
        out_pixels = (output_size(height, kernel, self.stride, self.padding, self.dilation)
                      * output_size(width, kernel, self.stride, self.padding, self.dilation))
        return batch * channels * kernel * kernel * out_pixels <= KEEP_COLUMNS_MAX_ELEMENTS

    def bprop(self, x, weight, out, dout):
        batch, channels, height, width = x.shape
        out_channels, _, kernel, _ = weight.shape
        groups = self.groups
        if self.keeps_columns(x.shape):
            columns = out[1]
            dout = dout[0]  # the gradient of the columns output is zero: callers never use it
        else:
            columns = _im2col(ops.depend(x, dout), kernel, self.stride, self.padding, self.dilation, groups)
        depth, out_pixels = columns.shape[2], columns.shape[3]
        per_group = out_channels // groups
        grouped_dout = dout.reshape(batch, groups, per_group, out_pixels)
        kernels = weight.reshape(groups, per_group, depth)
        broadcast = _broadcasts_kernels(out_pixels, per_group)
        if broadcast:
            dweight = self.matmul_transpose_b(grouped_dout, columns).sum(0)
        else:
            dweight = self.matmul_transpose_b(_fold_batch(grouped_dout), _fold_batch(columns))
        # Order the input gradient after the weight gradient, so that the scheduler cannot run
        # the chain of input gradients ahead and keep each layer's `dout` for later (peak at
        # 224x224, batch 32: 11.95 -> 11.79 GB, measured).
        dout = ops.depend(dout, dweight)
        if self.stride == 1:
            # The input gradient of a stride-1 "same" conv is the same conv of `dout` with the
            # kernels flipped and transposed within each group: an im2col of `dout` instead of a
            # col2im, which MindSpore's CPU runs ~2.5x slower (measured).
            dx = conv2d_gemm(dout, _transposed_kernels(weight, groups), 1, self.padding, self.dilation, groups)
        else:
            grouped_dout = dout.reshape(batch, groups, per_group, out_pixels)
            if broadcast:
                kernels = ops.broadcast_to(kernels.expand_dims(0), (batch, groups, per_group, depth))
                dcolumns = self.matmul_transpose_a(kernels, grouped_dout)
            else:
                dcolumns = _unfold_batch(self.matmul_transpose_a(kernels, _fold_batch(grouped_dout)), batch)
            dx = ops.fold(dcolumns.reshape(batch, channels * kernel * kernel, out_pixels),
                          Tensor([height, width], mstype.int32), kernel, self.dilation, self.padding, self.stride)
        return dx, dweight.reshape(weight.shape)


@constexpr
def _transposed_kernel_index(groups: int, per_group: int, group_in: int, kernel: int):
    """The flat positions in a weight (out, in/groups, k, k) of `_transposed_kernels`' elements."""
    index = np.arange(groups * per_group * group_in * kernel * kernel)
    index = index.reshape(groups, per_group, group_in, kernel, kernel).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    return Tensor(index.reshape(-1).astype(np.int32))


def _transposed_kernels(weight, groups: int):
    """(out, in/groups, k, k) -> (in, out/groups, k, k): each group's kernels transposed and flipped.

    One `Gather` of the weight by a constant permutation: MindSpore's CPU `ReverseV2` (flip)
    took ~1 ms even for these small weights (profiled).
    """
    out_channels, group_in, kernel, _ = weight.shape
    per_group = out_channels // groups
    index = _transposed_kernel_index(groups, per_group, group_in, kernel)
    return ops.gather(weight.reshape(-1), index, 0).reshape(groups * group_in, per_group, kernel, kernel)


# A conv whose input has at most this many pixels is computed as one dense GEMM per group
# (`conv2d_small_image`), without im2col. At 4x4 pixels and below that is 1.7-4x faster than
# im2col + GEMM for every SKNet conv, at 8x8 it is 1.4x slower (measured, batch 32, forward
# and backward).
SMALL_IMAGE_MAX_PIXELS = 16


@constexpr
def _tap_selection(height: int, width: int, kernel: int, stride: int, padding: int, dilation: int):
    """The 0/1 tensor S (k*k, H*W * H'*W'): S[t, q, p] = 1 if tap t of output pixel p reads input pixel q.

    Taps that read the zero padding have no input pixel, so they drop out.
    """
    out_height = output_size(height, kernel, stride, padding, dilation)
    out_width = output_size(width, kernel, stride, padding, dilation)
    tap_row, tap_col = np.divmod(np.arange(kernel * kernel), kernel)
    out_row, out_col = np.divmod(np.arange(out_height * out_width), out_width)
    rows = out_row[None, :] * stride + tap_row[:, None] * dilation - padding  # (taps, out pixels)
    cols = out_col[None, :] * stride + tap_col[:, None] * dilation - padding
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    taps, out_pixels = np.nonzero(inside)
    selection = np.zeros((kernel * kernel, height * width, out_height * out_width), np.float32)
    selection[taps, rows[inside] * width + cols[inside], out_pixels] = 1
    return Tensor(selection.reshape(kernel * kernel, -1))


def conv2d_small_image(x, weight, stride: int, padding: int, dilation: int, groups: int):
    """A (grouped) conv of a small image as one dense GEMM per group, without im2col.

    On an image of P pixels a conv is a linear map of each group's C/groups * P inputs to its
    out/groups * P' outputs; its matrix is the kernel spread over the pixels by
    `_tap_selection`, built here from `weight` by one small GEMM (so it is differentiable and
    the parameter is unchanged). It costs P/(k*k) times the multiply-adds of im2col + GEMM,
    but no im2col, col2im or strided transposes; the batch stays the GEMM's row dimension.
    """
    batch, _, height, width = x.shape
    out_channels, group_in, kernel, _ = weight.shape
    out_height = output_size(height, kernel, stride, padding, dilation)
    out_width = output_size(width, kernel, stride, padding, dilation)
    in_pixels, out_pixels = height * width, out_height * out_width
    per_group = out_channels // groups
    selection = _tap_selection(height, width, kernel, stride, padding, dilation)
    dense = ops.matmul(weight.reshape(-1, kernel * kernel), selection)  # (out * in/groups, P * P')
    dense = dense.reshape(groups, per_group, group_in, in_pixels, out_pixels).transpose(0, 2, 3, 1, 4)
    dense = dense.reshape(groups, group_in * in_pixels, per_group * out_pixels)
    x = x.reshape(batch, groups, group_in * in_pixels).transpose(1, 0, 2)  # (groups, B, C/groups * P)
    out = ops.BatchMatMul()(x, dense)  # (groups, B, out/groups * P')
    return out.transpose(1, 0, 2).reshape(batch, out_channels, out_height, out_width)


def conv2d_pointwise(x, weight, stride: int):
    """The `fast` ungrouped 1x1 conv: the native kernel where it is fast, a GEMM elsewhere.

    MindSpore's CPU convs run in plain NCHW layout; only the unstrided 1x1 conv on images of
    8x8 pixels or more is fast. A strided 1x1 conv is 100x slower than the unstrided one, so
    it subsamples first (a 1x1 `unfold` with the stride) and then takes the same decision.
    Shapes are static in graph mode, so the branch is resolved at compile time.
    """
    if stride > 1:
        batch, channels, height, width = x.shape
        x = ops.unfold(x, 1, 1, 0, stride).reshape(
            batch, channels, output_size(height, 1, stride, 0, 1), output_size(width, 1, stride, 0, 1))
    if x.shape[2] * x.shape[3] >= NATIVE_POINTWISE_MIN_PIXELS:
        return ops.conv2d(x, weight, None, 1, "valid", 0, 1, 1)
    return conv2d_gemm(x, weight, 1, 0, 1, 1)


class FastConv(NativeConv):
    """The conv of `conv_impl fast`, from the layer's weight: an ungrouped 1x1 conv is `conv2d_pointwise`, every
    other conv `conv2d_small_image` on images of at most `SMALL_IMAGE_MAX_PIXELS` pixels and `GemmConv`
    (im2col) on larger ones."""

    def __init__(self, kernel_size: int, stride: int, dilation: int, groups: int):
        super().__init__(kernel_size, stride, dilation, groups)
        pointwise = kernel_size == 1 and groups == 1
        self.gemm = None if pointwise else GemmConv(kernel_size, stride, self.padding, dilation, groups)

    def construct(self, x, weight):
        if self.gemm is None:
            return conv2d_pointwise(x, weight, self.stride)
        if x.shape[2] * x.shape[3] <= SMALL_IMAGE_MAX_PIXELS:
            return conv2d_small_image(x, weight, self.stride, self.padding, self.dilation, self.groups)
        if self.gemm.keeps_columns(x.shape):
            return self.gemm(x, weight)[0]
        return self.gemm(x, weight)
