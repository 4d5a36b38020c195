// A MindSpore CPU aot custom op (`ops.Custom(func_type="aot")`) for inference: 2-D max pooling in NCHW float32,
// one thread. Built into the library of ops_library.py; wrapped in max_pool.py.
//
// MindSpore 2.10 runs nn.MaxPool2d with padding as `MaxPool3DWithArgmax`, ~7 ms per SKNet-50 eval step at
// 32x32 and batch 32 (PyTorch: 2.8 ms); inference needs neither the argmax nor its cost.
//   cpu_max_pool_forward: x (N,C,H,W), geometry (3: kernel, stride, padding; int64) -> y (N,C,Ho,Wo)
// Padding never wins (it is -inf), and Ho = (H + 2 padding - kernel) / stride + 1, as in PyTorch without
// ceil_mode.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>

extern "C" {

int cpu_max_pool_forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                         void *) {
    if (nparam != 3 || ndims[0] != 4 || ndims[2] != 4 || std::strcmp(dtypes[0], "float32") != 0 ||
        std::strcmp(dtypes[2], "float32") != 0 || ndims[1] != 1 || shapes[1][0] != 3 ||
        std::strcmp(dtypes[1], "int64") != 0) {
        std::fprintf(stderr, "cpu_max_pool: expected a 4-D float32 x and an int64 geometry of 3\n");
        return 1;
    }
    const float *x = static_cast<const float *>(params[0]);
    const int64_t *geometry = static_cast<const int64_t *>(params[1]);
    float *y = static_cast<float *>(params[2]);
    const int64_t kernel = geometry[0], stride = geometry[1], padding = geometry[2];
    const int64_t planes = shapes[0][0] * shapes[0][1], H = shapes[0][2], W = shapes[0][3];
    const int64_t Ho = shapes[2][2], Wo = shapes[2][3];
    if (kernel < 1 || stride < 1 || padding < 0 || Ho != (H + 2 * padding - kernel) / stride + 1 ||
        Wo != (W + 2 * padding - kernel) / stride + 1 || shapes[2][0] * shapes[2][1] != planes) {
        std::fprintf(stderr, "cpu_max_pool: inconsistent shapes or geometry\n");
        return 1;
    }
    for (int64_t plane = 0; plane < planes; ++plane) {
        const float *in = x + plane * H * W;
        float *out = y + plane * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; ++oh) {
            const int64_t h0 = std::max<int64_t>(oh * stride - padding, 0);
            const int64_t h1 = std::min<int64_t>(oh * stride - padding + kernel, H);
            for (int64_t ow = 0; ow < Wo; ++ow) {
                const int64_t w0 = std::max<int64_t>(ow * stride - padding, 0);
                const int64_t w1 = std::min<int64_t>(ow * stride - padding + kernel, W);
                float best = -std::numeric_limits<float>::infinity();
                for (int64_t h = h0; h < h1; ++h)
                    for (int64_t w = w0; w < w1; ++w) best = std::max(best, in[h * W + w]);
                out[oh * Wo + ow] = best;
            }
        }
    }
    return 0;
}

}  // extern "C"
