"""The optimizer of a run: `momentum` (the seed's SGD), `nesterov` or `adamw`, with optional gradient clipping.

Gradient clipping scales the gradients so that their global L2 norm is at most `grad_clip_norm`, on the
unscaled gradients and before weight decay (as torch's `clip_grad_norm_` before `optimizer.step()`).
The gradients reach the optimizer unscaled from the overflow-checked step (dynamic scale, GPU/Ascend);
the plain CPU step leaves them multiplied by the optimizer's `loss_scale`. `Momentum` divides by that
scale itself, after adding the decay, so it is clipped in the scaled domain at `grad_clip_norm * loss_scale`
(the same cut: ||s g|| > s c exactly when ||g|| > c); `AdamWeightDecay` has no loss scale, so AdamW
unscales first. An overflowing step's gradients are clipped to NaN and the checked step skips them as before.
"""
from typing import Any

import mindspore as ms
import numpy as np
from mindspore import nn, ops

ADAMW_BETAS, ADAMW_EPS = (0.9, 0.999), 1e-8  # torch.optim.AdamW's defaults


_nesterov_update = ops.MultitypeFuncGraph("nesterov_update")


@_nesterov_update.register("Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _apply_nesterov(momentum, lr, gradient, weight, moment):
    """v = momentum * v + g; w -= lr * (g + momentum * v): ApplyMomentum(use_nesterov=True)'s formula."""
    moment = ops.assign(moment, momentum * moment + gradient)
    return ops.assign_sub(weight, lr * (gradient + momentum * moment))


class Momentum(nn.Momentum):
    """`nn.Momentum` with its gradients clipped by global norm first, and with a Nesterov update written out:
    MindSpore 2.10's CPU ApplyMomentum ignores `use_nesterov` (its updates equal plain momentum's)."""

    def __init__(self, groups: list[dict[str, Any]], lr: ms.Tensor, momentum: float, nesterov: bool,
                 loss_scale: float, clip_norm: float):
        super().__init__(groups, lr, momentum, loss_scale=loss_scale)
        self.nesterov = nesterov
        self.clip_norm = clip_norm * loss_scale  # the gradients still carry the scale here

    def construct(self, gradients):
        if self.clip_norm > 0:
            gradients = ops.clip_by_global_norm(gradients, self.clip_norm)
        if not self.nesterov:
            return super().construct(gradients)
        gradients = self.scale_grad(self.decay_weight(gradients))
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        return self.hyper_map(ops.partial(_nesterov_update, self.momentum, lr), gradients, self.params, self.moments)


class AdamW(nn.AdamWeightDecay):
    """AdamW (Loshchilov & Hutter): MindSpore's `AdamWeightDecay`, whose decay is decoupled from the gradient
    (param -= lr * (m / (sqrt(v) + eps) + weight_decay * param)); like BERT's, it has no bias correction of m, v.

    Its moments are named `moments.adam_m.*` / `moments.adam_v.*` and listed in `moments`, as `nn.Momentum`'s,
    so checkpoints save and restore them unchanged."""

    def __init__(self, groups: list[dict[str, Any]], lr: ms.Tensor, loss_scale: float, clip_norm: float):
        super().__init__(groups, lr, beta1=ADAMW_BETAS[0], beta2=ADAMW_BETAS[1], eps=ADAMW_EPS)
        self.moments1 = self._parameters.clone(prefix="moments.adam_m", init="zeros")
        self.moments2 = self._parameters.clone(prefix="moments.adam_v", init="zeros")
        self.moments = self.moments1 + self.moments2
        self.unscale = loss_scale != 1.0
        self.reciprocal_loss_scale = ms.Tensor(1.0 / loss_scale, ms.float32)
        self.clip_norm = clip_norm

    def construct(self, gradients):
        if self.unscale:
            gradients = self.map_(ops.partial(ops.mul, self.reciprocal_loss_scale), gradients)
        if self.clip_norm > 0:
            gradients = ops.clip_by_global_norm(gradients, self.clip_norm)
        return super().construct(gradients)


def create_optimizer(name: str, groups: list[dict[str, Any]], lr: np.ndarray, momentum: float, loss_scale: float,
                     clip_norm: float) -> nn.Optimizer:
    """The `name` optimizer over weight-decay `groups` and the per-step `lr`; `loss_scale`: what the
    gradients still carry when they arrive (`optimizer_loss_scale`); `clip_norm` 0: no clipping."""
    lr = ms.Tensor(lr)
    if name == "adamw":
        return AdamW(groups, lr, loss_scale, clip_norm)
    if name == "nesterov" or clip_norm > 0:
        return Momentum(groups, lr, momentum, name == "nesterov", loss_scale, clip_norm)
    return nn.Momentum(groups, lr, momentum, loss_scale=loss_scale)  # the seed's optimizer, unchanged
