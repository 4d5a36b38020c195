"""A/B timing in one process: our conv2d_gemm / GemmConv (A) vs the oneDNN custom op (B).

Each case is compiled and warmed up twice, then timed in >= ROUNDS alternating rounds
(A B A B ...); each round runs `reps` calls and the per-call time is recorded. Median ms.
fwd+bwd = `Vjp`: y = net(x, w) and (dx, dw) for a given dout via ops.vjp (forward once, no
loss ops). (A grads-only GradOperation graph lets MindSpore prune the oneDNN forward, whose
bprop does not need it, so it is not used for the table.)
"""
import os, sys, time
import numpy as np
import mindspore as ms
from mindspore import nn, ops, Tensor
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from src.layers.cpu_gemm_conv import conv2d_gemm, GemmConv, conv2d_small_image
from onednn_ops import OneDnnConv

ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
ROUNDS = int(os.environ.get("ROUNDS", 7))
ROUND_SECONDS = float(os.environ.get("ROUND_SECONDS", 0.4))


class GemmFwd(nn.Cell):
    def __init__(self, stride, groups):
        super().__init__(); self.stride, self.groups = stride, groups
    def construct(self, x, w):
        return conv2d_gemm(x, w, self.stride, 1, 1, self.groups)


class SmallFwd(nn.Cell):
    def construct(self, x, w):
        return conv2d_small_image(x, w, 1, 1, 1, 32)


class GemmLayer(nn.Cell):
    """As src.layers.conv.Conv2d uses GemmConv."""
    def __init__(self, x_shape, stride, groups):
        super().__init__()
        self.gemm = GemmConv(3, stride, 1, 1, groups)
        self.keep = self.gemm.keeps_columns(x_shape)
    def construct(self, x, w):
        if self.keep:
            return self.gemm(x, w)[0]
        return self.gemm(x, w)


class NativeFwd(nn.Cell):
    def construct(self, x, w):
        return ops.conv2d(x, w, None, 1, "valid", 0, 1, 1)


class FwdBwd(nn.Cell):
    """dx, dw of net(x, w) for a given output gradient (no extra loss ops)."""
    def __init__(self, net):
        super().__init__(); self.net = net
        self.grad = ops.GradOperation(get_all=True, sens_param=True)
    def construct(self, x, w, dout):
        return self.grad(self.net)(x, w, dout)


class Vjp(nn.Cell):
    """y = net(x, w) and (dx, dw) for output gradient dout, via ops.vjp: the forward runs once, no extra ops."""
    def __init__(self, net):
        super().__init__(); self.net = net
    def construct(self, x, w, dout):
        y, f = ops.vjp(self.net, x, w)
        dx, dw = f(dout)
        return y, dx, dw


class LossNet(nn.Cell):
    def __init__(self, net):
        super().__init__(); self.net = net
    def construct(self, x, w, dout):
        return (self.net(x, w) * dout).sum()


class FwdBwdLoss(nn.Cell):
    """loss = sum(net(x, w) * dout) and its dx, dw: the forward output is used, so it cannot be pruned."""
    def __init__(self, net):
        super().__init__()
        self.vg = ms.value_and_grad(LossNet(net), grad_position=(0, 1))
    def construct(self, x, w, dout):
        loss, (dx, dw) = self.vg(x, w, dout)
        return dx, dw, loss


def time_call(cell, args, reps):
    t = time.perf_counter()
    for _ in range(reps):
        out = cell(*args)
    (out[0] if isinstance(out, tuple) else out).asnumpy()  # wait for the last call
    return (time.perf_counter() - t) / reps * 1e3


def ab(cells, args):
    for c in cells:  # compile + 2 warm-ups
        for _ in range(2):
            time_call(c, args, 1)
    per = min(time_call(c, args, 1) for c in cells)
    reps = max(1, int(ROUND_SECONDS * 1e3 / max(per, 1e-3)))
    times = [[] for _ in cells]
    for _ in range(ROUNDS):
        for i, c in enumerate(cells):
            times[i].append(time_call(c, args, reps))
    return [float(np.median(t)) for t in times], reps


rng = np.random.default_rng(0)
B = 32
shapes = [(128, 56, 1), (256, 28, 1), (512, 14, 1), (1024, 7, 1), (128, 8, 1), (256, 4, 1)]
mode = sys.argv[1] if len(sys.argv) > 1 else "all"
print("runtime_num_threads:", ms.get_context("runtime_num_threads"), "ROUNDS", ROUNDS, flush=True)
if mode in ("all", "grouped"):
    print(f"{'shape (B=32, g=32, k=3)':28s} {'pass':8s} {'ours ms':>9s} {'oneDNN ms':>10s} {'ratio':>6s} reps", flush=True)
    for c, hw, s in shapes:
        x = Tensor(rng.standard_normal((B, c, hw, hw)).astype(np.float32))
        w = Tensor((rng.standard_normal((c, c // 32, 3, 3)) * 0.1).astype(np.float32))
        ho = (hw - 1) // s + 1
        dout = Tensor(rng.standard_normal((B, c, ho, ho)).astype(np.float32))
        label = f"{c}ch {hw}x{hw} s{s}"
        (a, b), reps = ab([GemmFwd(s, 32), OneDnnConv(x.shape, w.shape, s)], (x, w))
        print(f"{label:28s} {'fwd':8s} {a:9.3f} {b:10.3f} {a / b:6.2f} {reps}", flush=True)
        if hw * hw <= 16:
            (a, b), reps = ab([SmallFwd(), OneDnnConv(x.shape, w.shape, s)], (x, w))
            print(f"{label + ' [small_image]':28s} {'fwd':8s} {a:9.3f} {b:10.3f} {a / b:6.2f} {reps}", flush=True)
        (a, b), reps = ab([Vjp(GemmLayer(x.shape, s, 32)), Vjp(OneDnnConv(x.shape, w.shape, s))], (x, w, dout))
        print(f"{label:28s} {'fwd+bwd':8s} {a:9.3f} {b:10.3f} {a / b:6.2f} {reps}", flush=True)
        if hw * hw <= 16:
            (a, b), reps = ab([Vjp(SmallFwd()), Vjp(OneDnnConv(x.shape, w.shape, s))], (x, w, dout))
            print(f"{label + ' [small_image]':28s} {'fwd+bwd':8s} {a:9.3f} {b:10.3f} {a / b:6.2f} {reps}", flush=True)
if mode in ("all", "pointwise"):
    print(f"{'1x1 ungrouped (B=32)':28s} {'pass':8s} {'native ms':>9s} {'oneDNN ms':>10s} {'ratio':>6s} reps", flush=True)
    for cin, cout, hw in [(256, 128, 56), (1024, 512, 14)]:
        x = Tensor(rng.standard_normal((B, cin, hw, hw)).astype(np.float32))
        w = Tensor((rng.standard_normal((cout, cin, 1, 1)) * 0.1).astype(np.float32))
        (a, b), reps = ab([NativeFwd(), OneDnnConv(x.shape, w.shape, 1)], (x, w))
        print(f"{f'{cin}->{cout} {hw}x{hw}':28s} {'fwd':8s} {a:9.3f} {b:10.3f} {a / b:6.2f} {reps}", flush=True)
