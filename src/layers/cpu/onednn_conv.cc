// MindSpore CPU aot custom ops (`ops.Custom(func_type="aot")`) that compute a 2-D convolution and its
// two gradients with the oneDNN MindSpore bundles (mindspore/lib/libdnnl.so.3, oneDNN 3.10.1, THREADPOOL
// runtime). Built and loaded by ops_library.py; wrapped with a bprop in onednn_conv.py.
//
// NCHW float32, weight (O, C/groups, k, k), symmetric padding dilation*(k-1)/2 (PyTorch semantics).
// The third input of every op is an int64 tensor `geometry` = (stride, dilation, threads); groups come
// from the shapes (C / weight.shape[1]).
//   onednn_conv_forward:          x (N,C,H,W),    w (O,C/g,k,k), geometry    -> y  (N,O,Ho,Wo)
//   onednn_conv_forward_epilogue: x (N,C,H,W),    w (O,C/g,k,k), geometry + (relu), bias (O) -> y: inference
//                                 only, y = conv + bias, then max(y, 0) if relu is 1 (a folded BatchNorm's
//                                 shift and the ReLU after it, inside oneDNN's kernel)
//   onednn_conv_backward_data:    dy (N,O,Ho,Wo), w (O,C/g,k,k), geometry, x -> dx (N,C,H,W)
//   onednn_conv_backward_weights: dy (N,O,Ho,Wo), x (N,C,H,W),   geometry    -> dw (O,C/g,k,k)
// oneDNN picks its own layouts (format_tag::any); the NCHW tensors are reordered inside each call, as
// PyTorch does. Primitives are cached per shape; the reorder buffers and the scratchpad are allocated per
// call (scratchpad_mode::user), so no large buffer outlives a call.
#include <oneapi/dnnl/dnnl.hpp>
#include <oneapi/dnnl/dnnl_threadpool.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "thread_pool.h"

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {


// epilogue: 0 none, 1 bias, 2 bias then ReLU (forward only)
struct Geometry {
    memory::dim N, C, H, W, O, Ho, Wo, k, groups, stride, dilation, epilogue;
    auto tie() const { return std::tie(N, C, H, W, O, Ho, Wo, k, groups, stride, dilation, epilogue); }
    bool operator<(const Geometry &o) const { return tie() < o.tie(); }
};

enum Kind { FORWARD, BACKWARD_DATA, BACKWARD_WEIGHTS };

// One cached primitive and the reorders between MindSpore's plain tensors and oneDNN's chosen layouts.
// Only descriptors and primitives are kept; every buffer is allocated by the call that needs it.
struct Port {
    memory::desc plain, chosen;
    bool reordered = false;
    reorder convert;  // plain -> chosen for an input, chosen -> plain for the output
    void init(const engine &eng, const memory::desc &p, const memory::desc &c, bool input) {
        plain = p;
        chosen = c;
        reordered = p != c;
        if (reordered)
            convert = input ? reorder(reorder::primitive_desc(eng, p, eng, c))
                            : reorder(reorder::primitive_desc(eng, c, eng, p));
    }
};

struct Cached {
    primitive prim;
    memory::desc scratchpad, bias;  // bias: zero unless the forward has an epilogue
    Port a, b, out;  // two inputs, one output
    int a_arg, b_arg, out_arg;
};

struct Context {
    engine eng{engine::kind::cpu, 0};
    std::map<std::pair<int, Geometry>, std::unique_ptr<Cached>> cache;  // guarded by sknet::pools().mu
};

Context &context() {
    static Context *c = new Context();  // never destroyed: no teardown-order issues at exit
    return *c;
}

struct Descs {
    memory::desc x_plain, w_plain, y_plain, x_any, w_any, y_any;
    memory::dims strides, dilates, pad_l, pad_r;
};

Descs make_descs(const Geometry &g, bool nhwc) {
    Descs d;
    memory::dims xd = {g.N, g.C, g.H, g.W}, yd = {g.N, g.O, g.Ho, g.Wo};
    memory::dims wd = g.groups == 1 ? memory::dims{g.O, g.C, g.k, g.k}
                                    : memory::dims{g.groups, g.O / g.groups, g.C / g.groups, g.k, g.k};
    d.x_plain = memory::desc(xd, dt::f32, tag::nchw);
    d.y_plain = memory::desc(yd, dt::f32, tag::nchw);
    d.w_plain = memory::desc(wd, dt::f32, g.groups == 1 ? tag::oihw : tag::goihw);
    d.x_any = memory::desc(xd, dt::f32, nhwc ? tag::nhwc : tag::any);
    d.y_any = memory::desc(yd, dt::f32, nhwc ? tag::nhwc : tag::any);
    d.w_any = memory::desc(wd, dt::f32, tag::any);
    memory::dim pad = g.dilation * (g.k - 1) / 2, span = g.dilation * (g.k - 1) + 1;
    d.strides = {g.stride, g.stride};
    d.dilates = {g.dilation - 1, g.dilation - 1};  // oneDNN counts the gaps: 0 = no dilation
    d.pad_l = {pad, pad};
    // the right padding that makes the output exactly Ho x Wo (it may be smaller than `pad`)
    d.pad_r = {(g.Ho - 1) * g.stride + span - g.H - pad, (g.Wo - 1) * g.stride + span - g.W - pad};
    return d;
}

primitive_attr user_scratchpad(bool relu = false) {
    primitive_attr attr;
    attr.set_scratchpad_mode(scratchpad_mode::user);
    if (relu) {
        post_ops ops;
        ops.append_eltwise(algorithm::eltwise_relu, 0.f, 0.f);
        attr.set_post_ops(ops);
    }
    return attr;
}

convolution_forward::primitive_desc forward_pd(const engine &eng, const Descs &d, prop_kind kind) {
    return convolution_forward::primitive_desc(eng, kind, algorithm::convolution_direct, d.x_any, d.w_any, d.y_any,
                                               d.strides, d.dilates, d.pad_l, d.pad_r, user_scratchpad());
}

convolution_forward::primitive_desc epilogue_pd(const engine &eng, const Descs &d, const memory::desc &bias,
                                                bool relu) {
    return convolution_forward::primitive_desc(eng, prop_kind::forward_inference, algorithm::convolution_direct,
                                               d.x_any, d.w_any, bias, d.y_any, d.strides, d.dilates, d.pad_l,
                                               d.pad_r, user_scratchpad(relu));
}

template <typename PD>
PD backward_pd(const engine &eng, const Geometry &g, bool nhwc) {
    Descs d = make_descs(g, nhwc);
    auto hint = forward_pd(eng, d, prop_kind::forward_training);
    return PD(eng, algorithm::convolution_direct, d.x_any, d.w_any, d.y_any, d.strides, d.dilates, d.pad_l,
              d.pad_r, hint, user_scratchpad());
}

// With few channels per group `any` gets oneDNN's im2col+GEMM fallback for the backward passes; the NHWC
// layout gets brgconv instead (measured 2x faster).
template <typename PD>
PD backward_pd_avoiding_gemm(const engine &eng, const Geometry &g) {
    PD pd = backward_pd<PD>(eng, g, false);
    if (std::strstr(pd.impl_info_str(), "gemm")) pd = backward_pd<PD>(eng, g, true);
    return pd;
}

// The primitive of `pd`, and the ports of its two inputs and its output: (plain desc, execution argument).
template <typename PD>
void set_up(Cached &p, const engine &eng, const PD &pd, const memory::desc (&plain)[3], const int (&args)[3]) {
    Port *ports[3] = {&p.a, &p.b, &p.out};
    for (int i = 0; i < 3; ++i) ports[i]->init(eng, plain[i], pd.query_md(query::exec_arg_md, args[i]), i < 2);
    std::tie(p.a_arg, p.b_arg, p.out_arg) = std::make_tuple(args[0], args[1], args[2]);
    p.prim = primitive(pd);
    p.scratchpad = pd.scratchpad_desc();
}

Cached &cached(Context &c, Kind kind, const Geometry &g) {
    auto key = std::make_pair(int(kind), g);
    auto it = c.cache.find(key);
    if (it != c.cache.end()) return *it->second;
    auto p = std::make_unique<Cached>();
    Descs d = make_descs(g, false);
    if (kind == FORWARD && g.epilogue > 0) {
        p->bias = memory::desc({g.O}, dt::f32, tag::x);
        set_up(*p, c.eng, epilogue_pd(c.eng, d, p->bias, g.epilogue == 2), {d.x_plain, d.w_plain, d.y_plain},
               {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST});
    } else if (kind == FORWARD)
        set_up(*p, c.eng, forward_pd(c.eng, d, prop_kind::forward_inference), {d.x_plain, d.w_plain, d.y_plain},
               {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST});
    else if (kind == BACKWARD_DATA)
        set_up(*p, c.eng, backward_pd_avoiding_gemm<convolution_backward_data::primitive_desc>(c.eng, g),
               {d.y_plain, d.w_plain, d.x_plain}, {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC});
    else
        set_up(*p, c.eng, backward_pd_avoiding_gemm<convolution_backward_weights::primitive_desc>(c.eng, g),
               {d.y_plain, d.x_plain, d.w_plain}, {DNNL_ARG_DIFF_DST, DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS});
    Cached &ref = *p;
    c.cache.emplace(key, std::move(p));
    return ref;
}

// Wraps a plain MindSpore buffer; for an input whose chosen layout differs, returns a reordered copy.
memory bind_input(Context &c, stream &s, const Port &port, void *ptr) {
    memory user(port.plain, c.eng, ptr);
    if (!port.reordered) return user;
    memory internal(port.chosen, c.eng);
    port.convert.execute(s, user, internal);
    return internal;
}

void execute(Context &c, sknet::Pool &pool, Cached &p, void *a_ptr, void *b_ptr, void *out_ptr, void *bias_ptr) {
    stream s = threadpool_interop::make_stream(c.eng, &pool);
    memory a = bind_input(c, s, p.a, a_ptr), b = bind_input(c, s, p.b, b_ptr);
    memory out_user(p.out.plain, c.eng, out_ptr);
    memory out = p.out.reordered ? memory(p.out.chosen, c.eng) : out_user;
    memory scratchpad(p.scratchpad, c.eng);
    std::unordered_map<int, memory> args{{p.a_arg, a}, {p.b_arg, b}, {p.out_arg, out},
                                         {DNNL_ARG_SCRATCHPAD, scratchpad}};
    if (bias_ptr != nullptr) args.emplace(DNNL_ARG_BIAS, memory(p.bias, c.eng, bias_ptr));
    p.prim.execute(s, args);
    if (p.out.reordered) p.out.convert.execute(s, out, out_user);
    s.wait();
}

// Every op has 4-D float32 tensors and the int64 geometry (stride, dilation, threads[, relu]) as its third
// input; the backward-data op also takes x, only for its shape (MindSpore infers dx's shape from it), and the
// epilogue op a float32 bias (O) as its fourth. The output is the last parameter.
bool valid_inputs(int nparam, int expected, int *ndims, int64_t **shapes, const char **dtypes, bool epilogue = false) {
    if (nparam != expected) return false;
    for (int i = 0; i < nparam; ++i) {
        bool ok = i == 2   ? ndims[i] == 1 && shapes[i][0] == (epilogue ? 4 : 3) && std::strcmp(dtypes[i], "int64") == 0
                  : epilogue && i == 3 ? ndims[i] == 1 && shapes[i][0] == shapes[1][0] &&
                                             std::strcmp(dtypes[i], "float32") == 0
                                       : ndims[i] == 4 && std::strcmp(dtypes[i], "float32") == 0;
        if (!ok) {
            std::fprintf(stderr, "onednn_conv: parameter %d is a %d-D %s tensor; expected 4-D float32 "
                         "(parameter 2: the int64 geometry; the epilogue's parameter 3: the bias)\n", i, ndims[i],
                         dtypes[i]);
            return false;
        }
    }
    return true;
}

// x, w, y: the shapes of input, weight and output, whichever of them is the op's result.
int run(Kind kind, int nparam, void **params, const int64_t *x, const int64_t *w, const int64_t *y,
        void *bias = nullptr) {
    const int64_t *geometry = static_cast<const int64_t *>(params[2]);
    const memory::dim epilogue = bias == nullptr ? 0 : geometry[3] == 1 ? 2 : 1;
    Geometry g{x[0], x[1], x[2], x[3], w[0], y[2], y[3], w[2], x[1] / w[1], geometry[0], geometry[1], epilogue};
    memory::dim span = g.dilation * (g.k - 1) + 1, pad = g.dilation * (g.k - 1) / 2;
    if (g.stride < 1 || g.dilation < 1 || w[2] != w[3] || x[1] % w[1] || g.O % g.groups || y[0] != x[0] ||
        y[1] != g.O || g.Ho != (g.H + 2 * pad - span) / g.stride + 1 ||
        g.Wo != (g.W + 2 * pad - span) / g.stride + 1) {
        std::fprintf(stderr, "onednn_conv: inconsistent shapes or geometry (stride %ld, dilation %ld)\n",
                     long(g.stride), long(g.dilation));
        return 1;
    }
    try {
        Context &c = context();
        std::lock_guard<std::mutex> l(sknet::pools().mu);
        int threads = int(geometry[2] < 1 ? 1 : geometry[2]);
        dnnl_threadpool_interop_set_max_concurrency(threads);
        execute(c, sknet::pools().get(threads), cached(c, kind, g), params[0], params[1], params[nparam - 1], bias);
        return 0;
    } catch (const dnnl::error &e) {
        std::fprintf(stderr, "onednn_conv: oneDNN error %d: %s\n", int(e.status), e.what());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "onednn_conv: %s\n", e.what());
    }
    return 1;
}

}  // namespace

extern "C" {

int onednn_conv_forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                        void *) {
    if (!valid_inputs(nparam, 4, ndims, shapes, dtypes)) return 1;
    return run(FORWARD, nparam, params, shapes[0], shapes[1], shapes[3]);
}

int onednn_conv_forward_epilogue(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                 void *, void *) {
    if (!valid_inputs(nparam, 5, ndims, shapes, dtypes, true)) return 1;
    return run(FORWARD, nparam, params, shapes[0], shapes[1], shapes[4], params[3]);
}

int onednn_conv_backward_data(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                              void *, void *) {
    if (!valid_inputs(nparam, 5, ndims, shapes, dtypes)) return 1;
    return run(BACKWARD_DATA, nparam, params, shapes[4], shapes[1], shapes[0]);
}

int onednn_conv_backward_weights(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                 void *, void *) {
    if (!valid_inputs(nparam, 4, ndims, shapes, dtypes)) return 1;
    return run(BACKWARD_WEIGHTS, nparam, params, shapes[1], shapes[3], shapes[0]);
}

}  // extern "C"
