// MindSpore CPU aot custom ops (`ops.Custom(func_type="aot")`) for an ungrouped 1x1 convolution of a small
// image and its two gradients, as one oneDNN sgemm each (dnnl_threadpool_interop_sgemm, on the library's
// thread pool). Built into the library of ops_library.py; wrapped in onednn_conv.py (`OneDnnPointwiseConv`).
//
// MindSpore computes such a conv as a batched GEMM between layout copies: the weight reshaped to 3-D (a copy
// of the weight at every call, since the weight is a parameter), the activations transposed to fold the batch
// into the GEMM and transposed back. Here the pixels of every image are gathered into the rows of one matrix
// (no copy at all for 1x1 images, where NCHW already is (N, C)), so one GEMM reads the weight as it is.
// NCHW float32, weight (O, C, 1, 1); the int64 `geometry` = (stride, threads); Ho = (H - 1) / stride + 1.
//   pointwise_conv_forward:          x (N,C,H,W),    w (O,C,1,1), geometry    -> y  (N,O,Ho,Wo)
//   pointwise_conv_forward_epilogue: x (N,C,H,W),    w (O,C,1,1), geometry + (relu), bias (O) -> y: inference
//                                    only, y = conv + bias, then max(y, 0) if relu is 1 (a folded BatchNorm's
//                                    shift and the ReLU after it)
//   pointwise_conv_backward_data:    dy (N,O,Ho,Wo), w (O,C,1,1), geometry, x -> dx (N,C,H,W)
//   pointwise_conv_backward_weights: dy (N,O,Ho,Wo), x (N,C,H,W),   geometry  -> dw (O,C,1,1)
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_threadpool.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "thread_pool.h"

namespace {

struct Shape {
    int64_t N, C, H, W, O, Ho, Wo, stride;
    int64_t rows() const { return N * Ho * Wo; }  // one GEMM row per output pixel of every image
};

bool float_tensor(const char *op, int i, int ndim, int *ndims, const char **dtypes) {
    if (ndims[i] == ndim && std::strcmp(dtypes[i], "float32") == 0) return true;
    std::fprintf(stderr, "%s: parameter %d is not a %d-D float32 tensor\n", op, i, ndim);
    return false;
}

// x, w, y: the shapes of input, weight and output, whichever of them is the op's result.
bool shape_of(const char *op, const int64_t *x, const int64_t *w, const int64_t *y, const int64_t *geometry,
              Shape &s) {
    s = Shape{x[0], x[1], x[2], x[3], w[0], y[2], y[3], geometry[0]};
    if (s.stride < 1 || w[1] != s.C || w[2] != 1 || w[3] != 1 || y[0] != s.N || y[1] != s.O ||
        s.Ho != (s.H - 1) / s.stride + 1 || s.Wo != (s.W - 1) / s.stride + 1) {
        std::fprintf(stderr, "%s: inconsistent shapes or stride %ld\n", op, long(s.stride));
        return false;
    }
    return true;
}

// The input's pixels as rows: rows[(n * Ho * Wo + p) * C + c] = x[n][c][pixel p with the stride]. Images of one
// pixel are already in that layout, so `x` itself is returned.
const float *gather_rows(const Shape &s, const float *x, std::vector<float> &buffer) {
    if (s.H * s.W == 1) return x;
    buffer.resize(size_t(s.rows() * s.C));
    const int64_t pixels = s.Ho * s.Wo;
    for (int64_t n = 0; n < s.N; ++n)
        for (int64_t c = 0; c < s.C; ++c) {
            const float *plane = x + (n * s.C + c) * s.H * s.W;
            float *row = buffer.data() + n * pixels * s.C + c;
            for (int64_t i = 0; i < s.Ho; ++i)
                for (int64_t j = 0; j < s.Wo; ++j) row[(i * s.Wo + j) * s.C] = plane[i * s.stride * s.W + j * s.stride];
        }
    return buffer.data();
}

// Rows (N * Ho * Wo, channels) back to NCHW maps of (H, W), every `stride`-th pixel (zeros between).
void scatter_rows(const Shape &s, int64_t channels, const float *rows, float *out, int64_t H, int64_t W,
                  int64_t stride) {
    const int64_t pixels = s.Ho * s.Wo;
    if (H != s.Ho || W != s.Wo) std::memset(out, 0, sizeof(float) * size_t(s.N * channels * H * W));
    for (int64_t n = 0; n < s.N; ++n)
        for (int64_t c = 0; c < channels; ++c) {
            float *plane = out + (n * channels + c) * H * W;
            const float *row = rows + n * pixels * channels + c;
            for (int64_t i = 0; i < s.Ho; ++i)
                for (int64_t j = 0; j < s.Wo; ++j)
                    plane[i * stride * W + j * stride] = row[(i * s.Wo + j) * channels];
        }
}

// dy's pixels as rows (N * Ho * Wo, O); dy itself for 1x1 outputs.
const float *output_rows(const Shape &s, const float *dy, std::vector<float> &buffer) {
    if (s.Ho * s.Wo == 1) return dy;
    Shape as_input{s.N, s.O, s.Ho, s.Wo, s.O, s.Ho, s.Wo, 1};
    return gather_rows(as_input, dy, buffer);
}

// C (M, N) = op(A) op(B), row-major, on the pool of `threads` threads.
bool gemm(const char *op, char transa, char transb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
          const float *B, int64_t ldb, float *C, int64_t ldc, const int64_t *geometry) {
    std::lock_guard<std::mutex> l(sknet::pools().mu);
    const int threads = int(geometry[1] < 1 ? 1 : geometry[1]);
    dnnl_threadpool_interop_set_max_concurrency(threads);
    dnnl_status_t status = dnnl_threadpool_interop_sgemm(transa, transb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc,
                                                         &sknet::pools().get(threads));
    if (status == dnnl_success) return true;
    std::fprintf(stderr, "%s: oneDNN sgemm failed with status %d\n", op, int(status));
    return false;
}

// rows (rows, O) += bias, then max(rows, 0) if `relu`.
void add_bias(const Shape &s, float *rows, const float *bias, bool relu) {
    for (int64_t r = 0; r < s.rows(); ++r) {
        float *row = rows + r * s.O;
#pragma omp simd
        for (int64_t o = 0; o < s.O; ++o) {
            const float v = row[o] + bias[o];
            row[o] = relu && v < 0 ? 0.f : v;
        }
    }
}

// y = conv(x, w), plus the bias (and the ReLU) if `bias` is given. x, w, geometry are params[0..2].
int forward(const char *op, void **params, int64_t **shapes, const float *bias, float *y, const int64_t *y_shape) {
    const int64_t *geometry = static_cast<const int64_t *>(params[2]);
    Shape s;
    if (!shape_of(op, shapes[0], shapes[1], y_shape, geometry, s)) return 1;
    std::vector<float> rows_buffer, out_buffer;
    const float *rows = gather_rows(s, static_cast<const float *>(params[0]), rows_buffer);
    const bool one_pixel = s.Ho * s.Wo == 1;
    if (!one_pixel) out_buffer.resize(size_t(s.rows() * s.O));
    float *out_rows = one_pixel ? y : out_buffer.data();
    // (rows, C) x (O, C)^T -> (rows, O)
    if (!gemm(op, 'N', 'T', s.rows(), s.O, s.C, rows, s.C, static_cast<const float *>(params[1]), s.C, out_rows,
              s.O, geometry))
        return 1;
    if (bias != nullptr) add_bias(s, out_rows, bias, geometry[2] == 1);
    if (!one_pixel) scatter_rows(s, s.O, out_rows, y, s.Ho, s.Wo, 1);
    return 0;
}

}  // namespace

extern "C" {

int pointwise_conv_forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                           void *) {
    const char *op = "pointwise_conv_forward";
    if (nparam != 4 || !float_tensor(op, 0, 4, ndims, dtypes) || !float_tensor(op, 1, 4, ndims, dtypes) ||
        !float_tensor(op, 3, 4, ndims, dtypes))
        return 1;
    return forward(op, params, shapes, nullptr, static_cast<float *>(params[3]), shapes[3]);
}

int pointwise_conv_forward_epilogue(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                    void *, void *) {
    const char *op = "pointwise_conv_forward_epilogue";
    if (nparam != 5 || !float_tensor(op, 0, 4, ndims, dtypes) || !float_tensor(op, 1, 4, ndims, dtypes) ||
        !float_tensor(op, 3, 1, ndims, dtypes) || !float_tensor(op, 4, 4, ndims, dtypes))
        return 1;
    if (shapes[2][0] != 3 || shapes[3][0] != shapes[1][0]) {
        std::fprintf(stderr, "%s: the geometry is not (stride, threads, relu) or the bias not (O)\n", op);
        return 1;
    }
    return forward(op, params, shapes, static_cast<const float *>(params[3]), static_cast<float *>(params[4]),
                   shapes[4]);
}

int pointwise_conv_backward_data(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                 void *, void *) {
    const char *op = "pointwise_conv_backward_data";
    if (nparam != 5 || !float_tensor(op, 0, 4, ndims, dtypes) || !float_tensor(op, 1, 4, ndims, dtypes) ||
        !float_tensor(op, 4, 4, ndims, dtypes))
        return 1;
    const int64_t *geometry = static_cast<const int64_t *>(params[2]);
    Shape s;
    if (!shape_of(op, shapes[4], shapes[1], shapes[0], geometry, s)) return 1;
    std::vector<float> dy_buffer, dx_buffer;
    const float *dy_rows = output_rows(s, static_cast<const float *>(params[0]), dy_buffer);
    float *dx = static_cast<float *>(params[4]);
    const bool direct = s.H * s.W == 1;  // one input pixel: dx is its rows
    if (!direct) dx_buffer.resize(size_t(s.rows() * s.C));
    float *dx_rows = direct ? dx : dx_buffer.data();
    // (rows, O) x (O, C) -> (rows, C)
    if (!gemm(op, 'N', 'N', s.rows(), s.C, s.O, dy_rows, s.O, static_cast<const float *>(params[1]), s.C, dx_rows,
              s.C, geometry))
        return 1;
    if (!direct) scatter_rows(s, s.C, dx_rows, dx, s.H, s.W, s.stride);
    return 0;
}

int pointwise_conv_backward_weights(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                    void *, void *) {
    const char *op = "pointwise_conv_backward_weights";
    if (nparam != 4 || !float_tensor(op, 0, 4, ndims, dtypes) || !float_tensor(op, 1, 4, ndims, dtypes) ||
        !float_tensor(op, 3, 4, ndims, dtypes))
        return 1;
    const int64_t *geometry = static_cast<const int64_t *>(params[2]);
    Shape s;
    if (!shape_of(op, shapes[1], shapes[3], shapes[0], geometry, s)) return 1;
    std::vector<float> dy_buffer, rows_buffer;
    const float *dy_rows = output_rows(s, static_cast<const float *>(params[0]), dy_buffer);
    const float *rows = gather_rows(s, static_cast<const float *>(params[1]), rows_buffer);
    // (rows, O)^T x (rows, C) -> (O, C)
    return gemm(op, 'T', 'N', s.O, s.C, s.rows(), dy_rows, s.O, rows, s.C, static_cast<float *>(params[3]), s.C,
                geometry)
               ? 0
               : 1;
}

}  // extern "C"
