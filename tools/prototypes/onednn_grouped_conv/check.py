"""Correctness: oneDNN custom ops vs ops.conv2d and its autodiff gradients (GRAPH_MODE, CPU)."""
import os
import sys
import numpy as np
import mindspore as ms
from mindspore import nn, ops, Tensor
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onednn_ops import OneDnnConv

ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")


class Ref(nn.Cell):
    def __init__(self, stride, groups):
        super().__init__()
        self.stride, self.groups = stride, groups

    def construct(self, x, w):
        return ops.conv2d(x, w, None, self.stride, "pad", w.shape[2] // 2, 1, self.groups)


class Loss(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def construct(self, x, w, g):
        return (self.net(x, w) * g).sum()


rng = np.random.default_rng(0)
cases = [(4, 128, 56, 1, 32, 3), (4, 256, 28, 1, 32, 3), (3, 512, 14, 1, 32, 3), (2, 1024, 7, 1, 32, 3),
         (4, 128, 8, 1, 32, 3), (4, 256, 4, 1, 32, 3), (2, 256, 28, 2, 32, 3), (2, 512, 7, 2, 32, 3),
         (2, 256, 14, 1, 1, 1)]
worst = {"fwd": 0, "dx": 0, "dw": 0}
for n, c, hw, stride, groups, k in cases:
    o = c if k == 3 else c // 2
    x = Tensor(rng.standard_normal((n, c, hw, hw)).astype(np.float32))
    w = Tensor((rng.standard_normal((o, c // groups, k, k)) * 0.1).astype(np.float32))
    ref, mine = Ref(stride, groups), OneDnnConv(x.shape, w.shape, stride)
    y_ref, y = ref(x, w).asnumpy(), mine(x, w).asnumpy()
    g = Tensor(rng.standard_normal(y_ref.shape).astype(np.float32))
    grad_ref = ms.grad(Loss(ref), grad_position=(0, 1))
    grad_mine = ms.grad(Loss(mine), grad_position=(0, 1))
    dx_r, dw_r = [t.asnumpy() for t in grad_ref(x, w, g)]
    dx_m, dw_m = [t.asnumpy() for t in grad_mine(x, w, g)]
    # float64 reference of dw: how far each fp32 result is from exact
    xn, gn, per = x.asnumpy().astype(np.float64), g.asnumpy().astype(np.float64), o // groups
    p = k // 2
    xp = np.pad(xn, ((0, 0), (0, 0), (p, p), (p, p)))
    ho = y_ref.shape[2]
    dw64 = np.zeros(dw_r.shape)
    cin = c // groups
    for gi in range(groups):
        for a in range(k):
            for b in range(k):
                dw64[gi*per:(gi+1)*per, :, a, b] = np.einsum(
                    "nohw,nihw->oi", gn[:, gi*per:(gi+1)*per],
                    xp[:, gi*cin:(gi+1)*cin, a:a + stride*(ho-1)+1:stride, b:b + stride*(ho-1)+1:stride])
    print(f"   dw vs float64: ops.conv2d autodiff {np.abs(dw_r - dw64).max():.2e}, oneDNN {np.abs(dw_m - dw64).max():.2e}")
    d = {"fwd": np.abs(y - y_ref).max(), "dx": np.abs(dx_m - dx_r).max(), "dw": np.abs(dw_m - dw_r).max()}
    scale = {"fwd": np.abs(y_ref).max(), "dx": np.abs(dx_r).max(), "dw": np.abs(dw_r).max()}
    for key in worst:
        worst[key] = max(worst[key], d[key])
    print(f"N={n} C={c} {hw}x{hw} s={stride} g={groups} k={k}: "
          + ", ".join(f"{key} maxdiff {d[key]:.2e} (|ref|max {scale[key]:.1f})" for key in d), flush=True)
print("worst:", {k2: f"{v:.2e}" for k2, v in worst.items()})
