"""Per-step learning rates: linear warmup, then a decay to `lr_end`."""
import math

import numpy as np

LR_DECAY_MODES = ("poly", "cosine", "linear", "steps")
# `steps` mode: the LR drops at these fractions of the decay phase (the seed's 30/60/80% epochs).
STEP_MILESTONES = (0.3, 0.6, 0.8)


def get_lr(lr_init: float, lr_end: float, lr_max: float, warmup_epochs: float, total_epochs: int,
           steps_per_epoch: int, lr_decay_mode: str = "poly", start_step: int = 0,
           poly_power: float = 2.0) -> np.ndarray:
    """The learning rate of every step from `start_step` to the end of training.

    Warmup: step i < W gets lr_init + (lr_max - lr_init) * i / W, so step 0 is `lr_init` and
    step W is `lr_max`. Decay: with progress p from 0 (step W) to 1 (the last step), the LR
    goes from `lr_max` to exactly `lr_end` in every mode:
      poly:   lr_end + (lr_max - lr_end) * (1 - p) ** poly_power
      cosine: lr_end + (lr_max - lr_end) * (1 + cos(pi * p)) / 2
      linear: lr_max + (lr_end - lr_max) * p
      steps:  piecewise constant, dropping geometrically from lr_max to lr_end at the
              milestones 30%, 60% and 80% of the decay phase.
    `start_step` drops the steps already taken, so a resumed run continues the schedule.

    Returns a float32 array of length total_epochs * steps_per_epoch - start_step.
    """
    if lr_decay_mode not in LR_DECAY_MODES:
        raise ValueError(f"lr_decay_mode must be one of {', '.join(LR_DECAY_MODES)}, got {lr_decay_mode!r}")
    if total_epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"need at least one epoch and one step per epoch, got {total_epochs} x {steps_per_epoch}")
    total_steps = total_epochs * steps_per_epoch
    if not 0 <= start_step <= total_steps:
        raise ValueError(f"start_step {start_step} is outside the schedule of {total_steps} steps")
    warmup_steps = min(int(round(warmup_epochs * steps_per_epoch)), total_steps)
    if warmup_steps < 0:
        raise ValueError(f"warmup_epochs must not be negative, got {warmup_epochs}")
    decay_steps = total_steps - warmup_steps

    steps = np.arange(total_steps, dtype=np.float64)
    lr = np.empty(total_steps, dtype=np.float64)
    if warmup_steps:
        lr[:warmup_steps] = lr_init + (lr_max - lr_init) * steps[:warmup_steps] / warmup_steps
    progress = (steps[warmup_steps:] - warmup_steps) / max(decay_steps - 1, 1)
    if lr_decay_mode == "poly":
        decayed = lr_end + (lr_max - lr_end) * (1.0 - progress) ** poly_power
    elif lr_decay_mode == "cosine":
        decayed = lr_end + (lr_max - lr_end) * 0.5 * (1.0 + np.cos(math.pi * progress))
    elif lr_decay_mode == "linear":
        decayed = lr_max + (lr_end - lr_max) * progress
    else:
        drops = np.searchsorted(np.asarray(STEP_MILESTONES), progress, side="right")
        ratio = (lr_end / lr_max) if lr_max else 0.0
        decayed = lr_max * ratio ** (drops / len(STEP_MILESTONES))
    lr[warmup_steps:] = decayed
    return lr[start_step:].astype(np.float32)
