// MindSpore CPU aot custom ops (`ops.Custom(func_type="aot")`) for the training pass of a 2-D BatchNorm:
// batch statistics, normalisation, the moving averages' update and the three gradients, in NCHW float32.
// Built into the library of ops_library.py; wrapped in batchnorm.py.
//
// MindSpore 2.10's CPU BatchNorm and BatchNormGrad run oneDNN in plain NCHW layout and took 1.3-2x longer
// than these loops for SKNet-50's shapes (forward + backward, one thread, measured). Each channel
// reads its N planes in memory order; sums are accumulated per plane in float (vectorised) and across
// planes in double, in the same order whatever the thread count. Channels are split across the library's
// thread pool when the map has 2^15 elements or more.
//   cpu_batchnorm_forward:  x (N,C,H,W), gamma, beta, moving_mean, moving_variance (C), constants (2), threads
//                           -> y, mean, variance, new moving_mean, new moving_variance
//   cpu_batchnorm_backward: dy (N,C,H,W), x, gamma, mean, variance (C), constants (2), threads
//                           -> dx, dgamma, dbeta
// constants = (eps, momentum), float32; threads: int64 (1 value). `mean` and `variance` are the batch's
// (biased; the backward takes the forward's); y = (x - mean) / sqrt(variance + eps) * gamma + beta. The
// moving averages move by `momentum` towards the batch's mean and unbiased variance, as MindSpore's kernel
// does (NaN variance for one value per channel, as there).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "thread_pool.h"

namespace {

// `kinds` names each parameter: I, an image of x's 4-D shape; C, a vector of x's channels; K, the 2 constants
// (all float32); T, the int64 thread count.
bool valid(const char *op, int nparam, const char *kinds, int *ndims, int64_t **shapes, const char **dtypes) {
    if (nparam != int(std::strlen(kinds))) {
        std::fprintf(stderr, "%s: %d parameters; expected %d\n", op, nparam, int(std::strlen(kinds)));
        return false;
    }
    for (int i = 0; i < nparam; ++i) {
        bool ok = std::strcmp(dtypes[i], kinds[i] == 'T' ? "int64" : "float32") == 0;
        if (kinds[i] == 'I')
            ok = ok && ndims[i] == 4 && ndims[0] == 4 && std::memcmp(shapes[i], shapes[0], 4 * sizeof(int64_t)) == 0;
        else
            ok = ok && ndims[i] == 1 && shapes[i][0] == (kinds[i] == 'K' ? 2 : kinds[i] == 'T' ? 1 : shapes[0][1]);
        if (!ok) {
            std::fprintf(stderr, "%s: parameter %d is a %d-D %s tensor; expected %s\n", op, i, ndims[i], dtypes[i],
                         kinds[i] == 'I'   ? "x's 4-D float32 shape"
                         : kinds[i] == 'T' ? "the int64 thread count"
                                           : "a float32 vector");
            return false;
        }
    }
    return true;
}

// fn(first_channel, end_channel) over the C channels of `map` (N,C,H,W), split across the pool's threads.
template <typename Fn>
void for_channels(const int64_t *map, void *threads_param, Fn fn) {
    sknet::parallel_ranges(map[1], map[0] * map[1] * map[2] * map[3], int(*static_cast<const int64_t *>(threads_param)),
                           fn);
}

}  // namespace

extern "C" {

int cpu_batchnorm_forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                          void *) {
    if (!valid("cpu_batchnorm_forward", nparam, "ICCCCKTICCCC", ndims, shapes, dtypes)) return 1;
    const float *x = static_cast<const float *>(params[0]), *gamma = static_cast<const float *>(params[1]),
                *beta = static_cast<const float *>(params[2]), *moving_mean = static_cast<const float *>(params[3]),
                *moving_variance = static_cast<const float *>(params[4]),
                *constants = static_cast<const float *>(params[5]);
    float *y = static_cast<float *>(params[7]), *mean = static_cast<float *>(params[8]),
          *variance = static_cast<float *>(params[9]), *new_mean = static_cast<float *>(params[10]),
          *new_variance = static_cast<float *>(params[11]);
    const float eps = constants[0], momentum = constants[1];
    const int64_t N = shapes[0][0], C = shapes[0][1], HW = shapes[0][2] * shapes[0][3];
    const double count = double(N * HW);
    for_channels(shapes[0], params[6], [&](int64_t first, int64_t end) {
        for (int64_t c = first; c < end; ++c) {
            double sum = 0, squares = 0;
            for (int64_t n = 0; n < N; ++n) {
                const float *p = x + (n * C + c) * HW;
                float s = 0, q = 0;
#pragma omp simd reduction(+ : s, q)
                for (int64_t i = 0; i < HW; ++i) {
                    s += p[i];
                    q += p[i] * p[i];
                }
                sum += s;
                squares += q;
            }
            const double m = sum / count, v = squares / count - m * m;
            mean[c] = float(m);
            variance[c] = float(v > 0 ? v : 0);
            const float scale = gamma[c] / std::sqrt(variance[c] + eps), shift = beta[c] - mean[c] * scale;
            new_mean[c] = moving_mean[c] * (1 - momentum) + mean[c] * momentum;
            const float unbiased = count > 1 ? float(variance[c] * count / (count - 1)) : NAN;  // MindSpore: 0 / 0
            new_variance[c] = moving_variance[c] * (1 - momentum) + unbiased * momentum;
            for (int64_t n = 0; n < N; ++n) {
                const float *p = x + (n * C + c) * HW;
                float *out = y + (n * C + c) * HW;
#pragma omp simd
                for (int64_t i = 0; i < HW; ++i) out[i] = p[i] * scale + shift;
            }
        }
    });
    return 0;
}

int cpu_batchnorm_backward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                           void *) {
    if (!valid("cpu_batchnorm_backward", nparam, "IICCCKTICC", ndims, shapes, dtypes)) return 1;
    const float *dy = static_cast<const float *>(params[0]), *x = static_cast<const float *>(params[1]),
                *gamma = static_cast<const float *>(params[2]), *mean = static_cast<const float *>(params[3]),
                *variance = static_cast<const float *>(params[4]), *constants = static_cast<const float *>(params[5]);
    float *dx = static_cast<float *>(params[7]), *dgamma = static_cast<float *>(params[8]),
          *dbeta = static_cast<float *>(params[9]);
    const float eps = constants[0];
    const int64_t N = shapes[0][0], C = shapes[0][1], HW = shapes[0][2] * shapes[0][3];
    const float count = float(N * HW);
    // dgamma = sum(dy * xhat), dbeta = sum(dy); dx = gamma * invstd / M * (M dy - dbeta - xhat dgamma)
    for_channels(shapes[0], params[6], [&](int64_t first, int64_t end) {
        for (int64_t c = first; c < end; ++c) {
            const float m = mean[c];
            double sum_dy = 0, sum_dy_centered = 0;
            for (int64_t n = 0; n < N; ++n) {
                const float *g = dy + (n * C + c) * HW, *p = x + (n * C + c) * HW;
                float a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
                for (int64_t i = 0; i < HW; ++i) {
                    a += g[i];
                    b += g[i] * (p[i] - m);
                }
                sum_dy += a;
                sum_dy_centered += b;
            }
            const float invstd = 1.0f / std::sqrt(variance[c] + eps);
            dgamma[c] = float(sum_dy_centered) * invstd;
            dbeta[c] = float(sum_dy);
            const float k = gamma[c] * invstd / count, centered_k = invstd * dgamma[c], db = dbeta[c];
            for (int64_t n = 0; n < N; ++n) {
                const float *g = dy + (n * C + c) * HW, *p = x + (n * C + c) * HW;
                float *out = dx + (n * C + c) * HW;
#pragma omp simd
                for (int64_t i = 0; i < HW; ++i) out[i] = k * (count * g[i] - db - (p[i] - m) * centered_k);
            }
        }
    });
    return 0;
}

}  // extern "C"
