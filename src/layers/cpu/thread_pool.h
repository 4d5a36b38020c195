// The thread pool of the library that ops_library.py builds: oneDNN's convolutions (onednn_conv.cc and
// pointwise_conv.cc), the SK unit's ops (sk_pool_select.cc) and BatchNorm (batchnorm.cc) run their parallel
// loops on it.
// One pool per thread count, shared by every op, and one job at a time: a caller holds `pools().mu`
// while it runs jobs (MindSpore may launch two CPU kernels at once).
#pragma once

#include <oneapi/dnnl/dnnl_threadpool_iface.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace sknet {

// A synchronous threadpool (oneDNN's interface; the SK ops call its parallel_for too): the calling
// thread plus (threads - 1) workers take task indices from the job's atomic counter. Each job owns
// its counters (shared_ptr), so a worker that wakes late for a finished job finds no index left and
// never touches the job's function.
class Pool : public dnnl::threadpool_interop::threadpool_iface {
public:
    explicit Pool(int threads) : threads_(threads) {
        for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { worker(); });
    }
    ~Pool() override {
        {
            std::lock_guard<std::mutex> l(m_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto &t : workers_) t.join();
    }
    int get_num_threads() const override { return threads_; }
    bool get_in_parallel() const override { return in_parallel_; }
    uint64_t get_flags() const override { return 0; }
    void parallel_for(int n, const std::function<void(int, int)> &fn) override {
        if (n <= 0) return;
        if (n == 1 || threads_ == 1 || in_parallel_) {
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
        // Tasks are short: spin briefly before blocking.
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
    int threads_;
    std::vector<std::thread> workers_;
    std::mutex m_;
    std::condition_variable cv_, done_cv_;
    std::shared_ptr<Job> job_;
    uint64_t generation_ = 0;
    bool stop_ = false;
    static inline thread_local bool in_parallel_ = false;
};

// The library's pools, by thread count, and the lock that makes every op's call one at a time.
struct Pools {
    std::mutex mu;
    std::map<int, std::unique_ptr<Pool>> by_threads;
    Pool &get(int threads) {  // call with `mu` held
        if (threads < 1) threads = 1;
        auto &pool = by_threads[threads];
        if (!pool) pool = std::make_unique<Pool>(threads);
        return *pool;
    }
};

inline Pools &pools() {
    static Pools *p = new Pools();  // never destroyed: no teardown-order issues at exit
    return *p;
}

// Work smaller than this (in tensor elements) runs on the calling thread: waking the pool costs more.
constexpr int64_t PARALLEL_MIN_ELEMENTS = 1 << 15;

// fn(first, end) over [0, count), split across `threads` threads of the pool when the work (`elements`) is
// large enough, else on the calling thread. Each index is visited once, by one call.
template <typename Fn>
void parallel_ranges(int64_t count, int64_t elements, int threads, Fn fn) {
    if (threads <= 1 || count < 2 || elements < PARALLEL_MIN_ELEMENTS) {
        fn(int64_t(0), count);
        return;
    }
    std::lock_guard<std::mutex> l(pools().mu);
    const int tasks = int(count < threads ? count : threads);
    pools().get(threads).parallel_for(tasks, [&](int task, int n) { fn(count * task / n, count * (task + 1) / n); });
}

}  // namespace sknet
