"""One optimizer step with a fixed or a dynamic loss scale, and what a non-finite loss means.

- `auto` (the default): `dynamic` on GPU/Ascend, `fixed` on the CPU (which trains in fp32 and checks NaN/inf).
- `fixed`, on the CPU: the loss is scaled by a constant; every step updates the weights. A NaN
  or inf loss means the weights are already broken, so the run must stop (`TrainingDiverged`) and
  nothing after the last checkpoint may be saved. The loss can also stay finite over broken
  weights (a ReLU turns NaN into 0 on the CPU), so the weights are checked before every save too.
- `dynamic`: MindSpore's `TrainOneStepWithLossScaleCell` checks the gradients; a step whose
  gradients overflow is skipped (no update) and the scale is halved (never below 1), and it grows again
  after `scale_window` good steps. The trainer counts the skipped steps in its log.

On GPU and Ascend the `fixed` scale runs through the same overflow-checked step (with a constant
scale), because a NaN/inf loss cannot be seen there: Ascend 910A computes in saturation mode (an inf
becomes the largest float, a NaN becomes 0), so only the device's float status
(`NPUGetFloatStatusV2`, which MindSpore's cell reads on 910A) reveals an overflow. An overflowing
step is then not applied. Either scale stops the run after `max_skipped_steps` overflowing steps in a
row, and a dynamic one also when a step overflows at scale 1 (`src.training.sunk_steps.check_finite`).
"""
import mindspore as ms
import numpy as np
from mindspore import ParameterTuple, nn, ops

from src.utils.errors import UserError

LOSS_SCALE_TYPES = ("auto", "fixed", "dynamic")
SCALE_FACTOR, SCALE_WINDOW = 2, 1000  # MindSpore's defaults for DynamicLossScaleManager


class TrainingDiverged(UserError):
    """A NaN or inf loss of a step that updated the weights, or NaN/inf weights: nothing to save."""


def _keep_unless_skipped(skipped, statistic, before_step):
    return ops.assign(statistic, ops.select(skipped, before_step, statistic))


class OverflowCheckedStep(nn.TrainOneStepWithLossScaleCell):
    """MindSpore's loss-scale step (dynamic or fixed scale), made a true no-op when skipped, runnable on the CPU.

    - The forward pass of a skipped step has already moved the BatchNorm running statistics; after
      a NaN batch they would be NaN. They are copied before the step and put back when it is skipped.
    - The stock overflow check uses NPU float-status kernels (Ascend) or FloatStatus (GPU); the CPU
      has neither. There the gradients, already averaged over ranks by the grad reducer, are tested
      with `isfinite`, so every rank takes the same decision.
    """

    def __init__(self, network, optimizer, scale_sense, device_target: str):
        super().__init__(network, optimizer, scale_sense)
        self.check_on_host_kernels = device_target == "CPU"
        self.statistics = ParameterTuple([p for p in network.get_parameters() if not p.requires_grad])
        self.before_step = self.statistics.clone(prefix="before_step", init="zeros")

    def construct(self, *inputs):
        copied = self.hyper_map(ops.assign, self.before_step, self.statistics)
        first = ops.depend(inputs[0], copied)
        # Clear the device's float status before the step (Ascend saturation mode; a no-op elsewhere): the
        # stock step only clears it after reading, so an overflow of an evaluation in between would
        # otherwise be charged to this step.
        _, first = self.start_overflow_check(copied, first)
        loss, overflow, scale = super().construct(first, *inputs[1:])
        kept = self.hyper_map(ops.partial(_keep_unless_skipped, overflow), self.statistics, self.before_step)
        return ops.depend(loss, kept), overflow, scale

    def get_overflow_status(self, status, compute_output):
        if self.check_on_host_kernels:
            return ops.logical_not(ops.stack([ops.isfinite(grad).all() for grad in compute_output]).all())
        return super().get_overflow_status(status, compute_output)


class TrainStep:
    """Builds the train cell for `loss_scale_type` (`src.training.sunk_steps` runs it)."""

    def __init__(self, net: nn.Cell, optimizer: nn.Optimizer, loss_fn: nn.Cell, amp_level: str,
                 loss_scale_type: str, loss_scale: float, device_target: str):
        """Args:
            net, optimizer, loss_fn: the network, its optimizer (built with loss_scale
                `optimizer_loss_scale(...)`) and the loss.
            amp_level: O0..O3 mixed precision.
            loss_scale_type: "auto", "fixed" or "dynamic".
            loss_scale: the fixed scale, or the starting one of the dynamic scale.
            device_target: CPU, GPU or Ascend.
        """
        self.dynamic = resolve_loss_scale_type(loss_scale_type, device_target) == "dynamic"
        self.checked = uses_checked_step(loss_scale_type, device_target)
        self.loss_scale = loss_scale
        manager = ms.amp.FixedLossScaleManager(loss_scale if not self.checked else 1.0, drop_overflow_update=False)
        # build_train_network adds the mixed-precision casts and the loss; the checked step reuses that
        # loss network (`.network`) and only replaces the update rule.
        cell = ms.amp.build_train_network(net, optimizer, loss_fn, level=amp_level, loss_scale_manager=manager)
        if self.checked:
            scale = nn.DynamicLossScaleUpdateCell(loss_scale, SCALE_FACTOR, SCALE_WINDOW) if self.dynamic \
                else ms.Tensor(loss_scale, ms.float32)
            cell = OverflowCheckedStep(cell.network, optimizer, scale, device_target)
        self.cell = cell


def resolve_loss_scale_type(loss_scale_type: str, device_target: str) -> str:
    """`fixed` or `dynamic`: `auto` is dynamic on GPU/Ascend (one overflow must not end a run), fixed on the CPU."""
    if loss_scale_type not in LOSS_SCALE_TYPES:
        raise UserError(f"--loss_scale_type {loss_scale_type!r} is not one of {', '.join(LOSS_SCALE_TYPES)}")
    if loss_scale_type == "auto":
        return "fixed" if device_target == "CPU" else "dynamic"
    return loss_scale_type


def uses_checked_step(loss_scale_type: str, device_target: str) -> bool:
    """The overflow-checked step runs a dynamic scale anywhere and a fixed one on GPU/Ascend (see above)."""
    return resolve_loss_scale_type(loss_scale_type, device_target) == "dynamic" or device_target != "CPU"


def optimizer_loss_scale(loss_scale_type: str, loss_scale: float, device_target: str) -> float:
    """The optimizer divides the gradients by this: the fixed scale of the plain CPU step, or 1 (the checked
    step unscales them itself)."""
    return 1.0 if uses_checked_step(loss_scale_type, device_target) else loss_scale


def advice(last_checkpoint: str | None) -> str:
    kept = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was saved yet"
    return f"{kept}; lower --lr_max, then continue with --resume auto"


def check_finite_weights(params, where: str, last_checkpoint: str | None) -> None:
    """Raise `TrainingDiverged` if a parameter holds NaN/inf; called before a checkpoint is written."""
    for param in params:
        value = param.asnumpy()
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise TrainingDiverged(f"{param.name} holds NaN/inf at {where} although the loss stayed finite; the "
                                   f"weights were not saved ({advice(last_checkpoint)})")
