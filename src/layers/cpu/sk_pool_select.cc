// MindSpore CPU aot custom ops (`ops.Custom(func_type="aot")`) for the two-path SK unit's pooling and
// selection, and their gradients. Built into the library of ops_library.py; wrapped with their gradients in
// sk_pool_select.py.
//
// MindSpore computes these as ~17 kernels over the full maps per unit (Add, ReduceMean, BroadcastTo, Mul
// and their gradients); each op here is one pass over the maps. NCHW float32; a, b are the two paths'
// outputs (N,C,H,W), w and s are (N,C). The last input of every op is an int64 tensor `threads` (1 value).
//   sk_pool_forward:     a, b, threads            -> s = mean over H, W of a + b (Eq. 1-2)
//   sk_pool_backward:    ds, a, threads           -> g = ds / (H W), broadcast over H, W (a's shape)
//   sk_select_forward:   a, b, w, threads         -> y = b + (a - b) w  (= a w + b (1 - w), Eq. 6 for 2 paths)
//   sk_select_backward:  dy, a, b, w, threads     -> da = dy w, db = dy (1 - w), dw = sum over H, W of dy (a - b)
// Sums are accumulated in double, one (n, c) plane at a time, so results do not depend on the thread count.
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "thread_pool.h"

namespace {

// Parameter i is a float32 map of the shape of parameter `ref` (a 4-D float32 map itself).
bool float_map(const char *op, int i, int ref, int *ndims, int64_t **shapes, const char **dtypes) {
    bool same = ndims[i] == 4 && ndims[ref] == 4 && std::strcmp(dtypes[i], "float32") == 0;
    for (int d = 0; same && d < 4; ++d) same = shapes[i][d] == shapes[ref][d];
    if (!same) std::fprintf(stderr, "%s: parameter %d is not a float32 map of parameter %d's shape\n", op, i, ref);
    return same;
}

bool float_planes(const char *op, int index, const int64_t *map, int *ndims, int64_t **shapes, const char **dtypes) {
    if (ndims[index] == 2 && shapes[index][0] == map[0] && shapes[index][1] == map[1] &&
        std::strcmp(dtypes[index], "float32") == 0)
        return true;
    std::fprintf(stderr, "%s: parameter %d is not a float32 (N, C) of the maps' N and C\n", op, index);
    return false;
}

bool thread_count(const char *op, int index, int *ndims, int64_t **shapes, const char **dtypes) {
    if (ndims[index] == 1 && shapes[index][0] == 1 && std::strcmp(dtypes[index], "int64") == 0) return true;
    std::fprintf(stderr, "%s: parameter %d is not the int64 thread count\n", op, index);
    return false;
}

// fn(first_plane, end_plane) over the N*C planes of `map`, split across the pool's threads.
template <typename Fn>
void for_planes(const int64_t *map, void *threads_param, Fn fn) {
    const int64_t planes = map[0] * map[1];
    sknet::parallel_ranges(planes, planes * map[2] * map[3], int(*static_cast<const int64_t *>(threads_param)), fn);
}

}  // namespace

extern "C" {

int sk_pool_forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *) {
    const char *op = "sk_pool_forward";
    if (nparam != 4 || !float_map(op, 0, 0, ndims, shapes, dtypes) || !float_map(op, 1, 0, ndims, shapes, dtypes) ||
        !thread_count(op, 2, ndims, shapes, dtypes) || !float_planes(op, 3, shapes[0], ndims, shapes, dtypes))
        return 1;
    const float *a = static_cast<const float *>(params[0]), *b = static_cast<const float *>(params[1]);
    float *s = static_cast<float *>(params[3]);
    const int64_t hw = shapes[0][2] * shapes[0][3];
    for_planes(shapes[0], params[2], [&](int64_t first, int64_t end) {
        for (int64_t p = first; p < end; ++p) {
            const float *x = a + p * hw, *y = b + p * hw;
            double sum = 0;
            for (int64_t i = 0; i < hw; ++i) sum += double(x[i]) + double(y[i]);
            s[p] = float(sum / double(hw));
        }
    });
    return 0;
}

int sk_pool_backward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *) {
    const char *op = "sk_pool_backward";
    if (nparam != 4 || !float_map(op, 1, 1, ndims, shapes, dtypes) || !float_map(op, 3, 1, ndims, shapes, dtypes) ||
        !float_planes(op, 0, shapes[1], ndims, shapes, dtypes) || !thread_count(op, 2, ndims, shapes, dtypes))
        return 1;
    const float *ds = static_cast<const float *>(params[0]);
    float *g = static_cast<float *>(params[3]);
    const int64_t hw = shapes[1][2] * shapes[1][3];
    for_planes(shapes[1], params[2], [&](int64_t first, int64_t end) {
        for (int64_t p = first; p < end; ++p) {
            const float value = float(double(ds[p]) / double(hw));
            float *out = g + p * hw;
            for (int64_t i = 0; i < hw; ++i) out[i] = value;
        }
    });
    return 0;
}

int sk_select_forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                      void *) {
    const char *op = "sk_select_forward";
    if (nparam != 5 || !float_map(op, 0, 0, ndims, shapes, dtypes) || !float_map(op, 1, 0, ndims, shapes, dtypes) ||
        !float_planes(op, 2, shapes[0], ndims, shapes, dtypes) || !thread_count(op, 3, ndims, shapes, dtypes) ||
        !float_map(op, 4, 0, ndims, shapes, dtypes))
        return 1;
    const float *a = static_cast<const float *>(params[0]), *b = static_cast<const float *>(params[1]);
    const float *w = static_cast<const float *>(params[2]);
    float *y = static_cast<float *>(params[4]);
    const int64_t hw = shapes[0][2] * shapes[0][3];
    for_planes(shapes[0], params[3], [&](int64_t first, int64_t end) {
        for (int64_t p = first; p < end; ++p) {
            const float *x = a + p * hw, *z = b + p * hw;
            float *out = y + p * hw;
            const float weight = w[p];
            for (int64_t i = 0; i < hw; ++i) out[i] = z[i] + (x[i] - z[i]) * weight;
        }
    });
    return 0;
}

int sk_select_backward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                       void *) {
    const char *op = "sk_select_backward";
    if (nparam != 8) return 1;
    for (int i : {0, 1, 2, 5, 6}) {  // the maps first: float_planes reads the first map's N and C
        if (!float_map(op, i, 0, ndims, shapes, dtypes)) return 1;
    }
    if (!float_planes(op, 3, shapes[0], ndims, shapes, dtypes) || !thread_count(op, 4, ndims, shapes, dtypes) ||
        !float_planes(op, 7, shapes[0], ndims, shapes, dtypes))
        return 1;
    const float *dy = static_cast<const float *>(params[0]), *a = static_cast<const float *>(params[1]);
    const float *b = static_cast<const float *>(params[2]), *w = static_cast<const float *>(params[3]);
    float *da = static_cast<float *>(params[5]), *db = static_cast<float *>(params[6]);
    float *dw = static_cast<float *>(params[7]);
    const int64_t hw = shapes[0][2] * shapes[0][3];
    for_planes(shapes[0], params[4], [&](int64_t first, int64_t end) {
        for (int64_t p = first; p < end; ++p) {
            const float *g = dy + p * hw, *x = a + p * hw, *z = b + p * hw;
            float *gx = da + p * hw, *gz = db + p * hw;
            const float weight = w[p];
            double sum = 0;
            for (int64_t i = 0; i < hw; ++i) {
                const float scaled = g[i] * weight;
                gx[i] = scaled;
                gz[i] = g[i] - scaled;
                sum += double(g[i]) * (double(x[i]) - double(z[i]));
            }
            dw[p] = float(sum);
        }
    });
    return 0;
}

}  // extern "C"
