// Prototype: MindSpore CPU aot custom ops calling oneDNN's (grouped) 2D convolution.
// NCHW fp32, weight (O, C/groups, k, k), padding k/2, dilation 1. Stride and groups are
// inferred from the shapes MindSpore passes (no attributes needed):
//   conv_fwd:  inputs x (N,C,H,W), w (O,C/g,k,k)      -> y  (N,O,Ho,Wo)
//   conv_bwd_data:    dy (N,O,Ho,Wo), w (O,C/g,k,k)   -> dx (N,C,H,W)
//   conv_bwd_weights: dy (N,O,Ho,Wo), x (N,C,H,W)     -> dw (O,C/g,k,k)
// Layouts are chosen by oneDNN (format_tag::any); plain NCHW/goihw are reordered inside.
#include <oneapi/dnnl/dnnl.hpp>
#include <oneapi/dnnl/dnnl_threadpool.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

// Minimal synchronous threadpool: the calling thread plus (nthreads - 1) workers take
// closure indices from the job's atomic counter. Each job has its own counters (shared_ptr),
// so a worker waking late for a finished job finds no index left and never touches its fn.
class Pool : public threadpool_interop::threadpool_iface {
public:
    explicit Pool(int nthreads) : nthreads_(nthreads) {
        for (int i = 1; i < nthreads_; ++i) workers_.emplace_back([this] { worker(); });
    }
    ~Pool() override {
        {
            std::lock_guard<std::mutex> l(m_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto &t : workers_) t.join();
    }
    int get_num_threads() const override { return nthreads_; }
    bool get_in_parallel() const override { return in_parallel_; }
    uint64_t get_flags() const override { return 0; }
    void parallel_for(int n, const std::function<void(int, int)> &fn) override {
        if (n <= 0) return;
        if (n == 1 || nthreads_ == 1 || in_parallel_) {
            for (int i = 0; i < n; ++i) fn(i, n);
            return;
        }
        auto job = std::make_shared<Job>();
        job->fn = &fn;
        job->n = n;
        {
            std::lock_guard<std::mutex> l(m_);
            job_ = job;
            ++generation_;
        }
        cv_.notify_all();
        run_tasks(*job);
        // Wait for the workers: spin briefly, then block.
        for (int spin = 0; job->done.load(std::memory_order_acquire) < n && spin < 20000; ++spin) {
        }
        if (job->done.load(std::memory_order_acquire) < n) {
            std::unique_lock<std::mutex> l(m_);
            done_cv_.wait(l, [&] { return job->done.load() >= n; });
        }
        std::lock_guard<std::mutex> l(m_);
        if (job_ == job) job_.reset();
    }

private:
    struct Job {
        const std::function<void(int, int)> *fn = nullptr;
        int n = 0;
        std::atomic<int> next{0}, done{0};
    };
    void run_tasks(Job &job) {
        bool was = in_parallel_;
        in_parallel_ = true;
        for (;;) {
            int i = job.next.fetch_add(1);
            if (i >= job.n) break;
            (*job.fn)(i, job.n);
            if (job.done.fetch_add(1, std::memory_order_acq_rel) + 1 == job.n) {
                std::lock_guard<std::mutex> l(m_);
                done_cv_.notify_all();
            }
        }
        in_parallel_ = was;
    }
    void worker() {
        uint64_t seen = 0;
        for (;;) {
            std::shared_ptr<Job> job;
            {
                std::unique_lock<std::mutex> l(m_);
                cv_.wait(l, [&] { return stop_ || (generation_ != seen && job_ != nullptr); });
                if (stop_) return;
                seen = generation_;
                job = job_;
            }
            run_tasks(*job);
        }
    }
    int nthreads_;
    std::vector<std::thread> workers_;
    std::mutex m_;
    std::condition_variable cv_, done_cv_;
    std::shared_ptr<Job> job_;
    uint64_t generation_ = 0;
    bool stop_ = false;
    static thread_local bool in_parallel_;
};
thread_local bool Pool::in_parallel_ = false;

int num_threads() {
    const char *s = std::getenv("ONEDNN_PROTO_THREADS");
    if (s) return std::max(1, std::atoi(s));
    unsigned h = std::thread::hardware_concurrency();
    return h ? int(h) : 1;
}

struct Ctx {
    engine eng{engine::kind::cpu, 0};
    Pool pool{num_threads()};
    stream strm = threadpool_interop::make_stream(eng, &pool);
    std::mutex mu;  // one call at a time (cached memories are shared)
};
Ctx &ctx() {
    static Ctx *c = new Ctx();  // leaked on purpose: no teardown order issues at exit
    return *c;
}

struct Geo {
    memory::dim N, C, H, W, O, Ho, Wo, k, G, stride, pad;
    bool operator<(const Geo &o) const {
        return std::memcmp(this, &o, sizeof(Geo)) < 0;
    }
};

// Smallest stride that maps H to Ho with padding k/2 (SKNet: 1 or 2).
memory::dim infer_stride(memory::dim H, memory::dim Ho, memory::dim k) {
    memory::dim p = k / 2;
    for (memory::dim s = 1; s <= 8; ++s)
        if ((H + 2 * p - k) / s + 1 == Ho) return s;
    return -1;
}

struct Descs {
    memory::desc x_plain, w_plain, y_plain;
    memory::desc x_any, w_any, y_any;
    memory::dims strides, pad_l, pad_r;
};
Descs make_descs(const Geo &g) {
    Descs d;
    memory::dims xd = {g.N, g.C, g.H, g.W}, yd = {g.N, g.O, g.Ho, g.Wo};
    memory::dims wd = {g.G, g.O / g.G, g.C / g.G, g.k, g.k};
    if (g.G == 1) wd = {g.O, g.C, g.k, g.k};
    d.x_plain = memory::desc(xd, dt::f32, tag::nchw);
    d.y_plain = memory::desc(yd, dt::f32, tag::nchw);
    d.w_plain = memory::desc(wd, dt::f32, g.G == 1 ? tag::oihw : tag::goihw);
    d.x_any = memory::desc(xd, dt::f32, tag::any);
    d.y_any = memory::desc(yd, dt::f32, tag::any);
    d.w_any = memory::desc(wd, dt::f32, tag::any);
    d.strides = {g.stride, g.stride};
    d.pad_l = {g.pad, g.pad};
    // right padding so that the output size matches exactly
    d.pad_r = {(g.Ho - 1) * g.stride + g.k - g.H - g.pad, (g.Wo - 1) * g.stride + g.k - g.W - g.pad};
    return d;
}

convolution_forward::primitive_desc fwd_pd(const Ctx &c, const Descs &d, prop_kind pk) {
    return convolution_forward::primitive_desc(c.eng, pk, algorithm::convolution_direct, d.x_any, d.w_any,
                                               d.y_any, d.strides, d.pad_l, d.pad_r);
}

// A plain buffer bound at execution time plus, if the chosen layout differs, an internal one.
struct Port {
    memory::desc plain, chosen;
    bool reorder_needed = false;
    memory internal;
    reorder to_internal, from_internal;
    void init(const engine &eng, const memory::desc &p, const memory::desc &ch, bool input) {
        plain = p;
        chosen = ch;
        reorder_needed = (p != ch);
        if (reorder_needed) {
            internal = memory(ch, eng);
            if (input)
                to_internal = reorder(reorder::primitive_desc(eng, p, eng, ch));
            else
                from_internal = reorder(reorder::primitive_desc(eng, ch, eng, p));
        }
    }
};

struct Prim {
    primitive prim;
    Port a, b, out;  // two inputs, one output
    memory scratch;
};

void run(Ctx &c, Prim &p, void *a_ptr, void *b_ptr, void *out_ptr, int a_arg, int b_arg, int out_arg) {
    memory a_user(p.a.plain, c.eng, a_ptr), b_user(p.b.plain, c.eng, b_ptr), o_user(p.out.plain, c.eng, out_ptr);
    memory a_m = a_user, b_m = b_user, o_m = o_user;
    if (p.a.reorder_needed) {
        p.a.to_internal.execute(c.strm, a_user, p.a.internal);
        a_m = p.a.internal;
    }
    if (p.b.reorder_needed) {
        p.b.to_internal.execute(c.strm, b_user, p.b.internal);
        b_m = p.b.internal;
    }
    if (p.out.reorder_needed) o_m = p.out.internal;
    p.prim.execute(c.strm, {{a_arg, a_m}, {b_arg, b_m}, {out_arg, o_m}, {DNNL_ARG_SCRATCHPAD, p.scratch}});
    if (p.out.reorder_needed) p.out.from_internal.execute(c.strm, p.out.internal, o_user);
    c.strm.wait();
}

template <typename PD>
void finish(Ctx &c, Prim &p, const PD &pd) {
    p.prim = primitive(pd);
    p.scratch = memory(pd.scratchpad_desc(), c.eng);
}

void force_nhwc(Descs &d, const Geo &g) {
    d.x_any = memory::desc({g.N, g.C, g.H, g.W}, dt::f32, tag::nhwc);
    d.y_any = memory::desc({g.N, g.O, g.Ho, g.Wo}, dt::f32, tag::nhwc);
}

enum Kind { FWD, BWD_DATA, BWD_WEIGHTS };

Prim &get_prim(Ctx &c, Kind kind, const Geo &g) {
    static std::map<std::pair<int, Geo>, std::unique_ptr<Prim>> cache;
    auto key = std::make_pair(int(kind), g);
    auto it = cache.find(key);
    if (it != cache.end()) return *it->second;
    auto p = std::make_unique<Prim>();
    Descs d = make_descs(g);
    if (kind == FWD) {
        // ONEDNN_PROTO_FWD_BLOCKED=1: force nChw8c activations for the forward instead of
        // letting oneDNN choose (it picks NHWC + brgconv for these grouped convs on AVX2).
        if (std::getenv("ONEDNN_PROTO_FWD_BLOCKED")) {
            memory::dims xd = {g.N, g.C, g.H, g.W}, yd = {g.N, g.O, g.Ho, g.Wo};
            d.x_any = memory::desc(xd, dt::f32, tag::nChw8c);
            d.y_any = memory::desc(yd, dt::f32, tag::nChw8c);
        }
        auto pd = fwd_pd(c, d, prop_kind::forward_inference);
        if (std::getenv("ONEDNN_PROTO_VERBOSE")) std::fprintf(stderr, "fwd impl %s\n", pd.impl_info_str());
        p->a.init(c.eng, d.x_plain, pd.src_desc(), true);
        p->b.init(c.eng, d.w_plain, pd.weights_desc(), true);
        p->out.init(c.eng, d.y_plain, pd.dst_desc(), false);
        finish(c, *p, pd);
    } else if (kind == BWD_DATA) {
        if (std::getenv("ONEDNN_PROTO_BWD_NHWC")) force_nhwc(d, g);
        auto make = [&] {
            auto hint = fwd_pd(c, d, prop_kind::forward_training);
            return convolution_backward_data::primitive_desc(c.eng, algorithm::convolution_direct, d.x_any, d.w_any,
                                                             d.y_any, d.strides, d.pad_l, d.pad_r, hint);
        };
        auto pd = make();
        // With 4 channels per group, `any` gets the im2col+GEMM fallback; NHWC gets brgconv (measured 2x).
        if (!std::getenv("ONEDNN_PROTO_NO_RETRY") && std::strstr(pd.impl_info_str(), "gemm")) {
            force_nhwc(d, g);
            pd = make();
        }
        if (std::getenv("ONEDNN_PROTO_VERBOSE")) std::fprintf(stderr, "bwd_d impl %s\n", pd.impl_info_str());
        p->a.init(c.eng, d.y_plain, pd.diff_dst_desc(), true);
        p->b.init(c.eng, d.w_plain, pd.weights_desc(), true);
        p->out.init(c.eng, d.x_plain, pd.diff_src_desc(), false);
        finish(c, *p, pd);
    } else {
        if (std::getenv("ONEDNN_PROTO_BWD_NHWC")) force_nhwc(d, g);
        auto make = [&] {
            auto hint = fwd_pd(c, d, prop_kind::forward_training);
            return convolution_backward_weights::primitive_desc(c.eng, algorithm::convolution_direct, d.x_any,
                                                                d.w_any, d.y_any, d.strides, d.pad_l, d.pad_r, hint);
        };
        auto pd = make();
        if (!std::getenv("ONEDNN_PROTO_NO_RETRY") && std::strstr(pd.impl_info_str(), "gemm")) {
            force_nhwc(d, g);
            pd = make();
        }
        p->a.init(c.eng, d.y_plain, pd.diff_dst_desc(), true);
        p->b.init(c.eng, d.x_plain, pd.src_desc(), true);
        p->out.init(c.eng, d.w_plain, pd.diff_weights_desc(), false);
        finish(c, *p, pd);
        if (std::getenv("ONEDNN_PROTO_VERBOSE"))
            std::fprintf(stderr, "bwd_w impl %s\n", pd.impl_info_str());
    }
    Prim &ref = *p;
    cache.emplace(key, std::move(p));
    return ref;
}

bool check4(int nparam, int *ndims, const char **dtypes) {
    if (nparam != 3) return false;
    for (int i = 0; i < 3; ++i)
        if (ndims[i] != 4 || std::strcmp(dtypes[i], "float32") != 0) return false;
    return true;
}

template <typename F>
int guarded(F f) {
    try {
        Ctx &c = ctx();
        std::lock_guard<std::mutex> l(c.mu);
        dnnl_threadpool_interop_set_max_concurrency(c.pool.get_num_threads());
        f(c);
        return 0;
    } catch (const dnnl::error &e) {
        std::fprintf(stderr, "onednn_conv: dnnl error %d: %s\n", int(e.status), e.what());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "onednn_conv: %s\n", e.what());
    }
    return 1;
}

}  // namespace

extern "C" {

int conv_fwd(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *) {
    if (!check4(nparam, ndims, dtypes)) return 1;
    int64_t *x = shapes[0], *w = shapes[1], *y = shapes[2];
    Geo g{x[0], x[1], x[2], x[3], w[0], y[2], y[3], w[2], x[1] / w[1], infer_stride(x[2], y[2], w[2]), w[2] / 2};
    if (g.stride < 0) return 1;
    return guarded([&](Ctx &c) {
        run(c, get_prim(c, FWD, g), params[0], params[1], params[2], DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST);
    });
}

int conv_bwd_data(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *) {
    if (!check4(nparam, ndims, dtypes)) return 1;
    int64_t *dy = shapes[0], *w = shapes[1], *dx = shapes[2];
    Geo g{dx[0], dx[1], dx[2], dx[3], w[0], dy[2], dy[3], w[2], dx[1] / w[1], infer_stride(dx[2], dy[2], w[2]),
          w[2] / 2};
    if (g.stride < 0) return 1;
    return guarded([&](Ctx &c) {
        run(c, get_prim(c, BWD_DATA, g), params[0], params[1], params[2], DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS,
            DNNL_ARG_DIFF_SRC);
    });
}

int conv_bwd_weights(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *) {
    if (!check4(nparam, ndims, dtypes)) return 1;
    int64_t *dy = shapes[0], *x = shapes[1], *dw = shapes[2];
    Geo g{x[0], x[1], x[2], x[3], dw[0], dy[2], dy[3], dw[2], x[1] / dw[1], infer_stride(x[2], dy[2], dw[2]),
          dw[2] / 2};
    if (g.stride < 0) return 1;
    return guarded([&](Ctx &c) {
        run(c, get_prim(c, BWD_WEIGHTS, g), params[0], params[1], params[2], DNNL_ARG_DIFF_DST, DNNL_ARG_SRC,
            DNNL_ARG_DIFF_WEIGHTS);
    });
}

}  // extern "C"
