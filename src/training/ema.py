"""An exponential moving average (EMA) of the weights and BatchNorm statistics (`--ema_decay`).

After every optimizer step, each average moves towards the network's value:
    average = decay_t * average + (1 - decay_t) * value,   decay_t = min(decay, (1 + t) / (10 + t))
with t the number of steps so far: the warm-up of timm's `ModelEmaV2`/mindcv, so that the early,
random weights are forgotten quickly. The averages are parameters named `ema.<name>`; training
checkpoints hold them, so `--resume` continues the average exactly.

The update runs on the device inside the training step's graph (`src.training.sunk_steps`), so several
steps can run per host round trip: t is an on-device count of the applied steps (set to the global step
on resume), and a step skipped for an overflow leaves the averages and t unchanged.

In a distributed run the trainable weights, and so their averages, are identical on every rank. The
BN statistics are each rank's own (its batches), and so are their averages; rank 0's are the ones
saved and evaluated, as for the BN statistics themselves, and a resumed run starts every rank from
them. (Averaging the statistics over the ranks with an AllReduce in a separate update graph made
MindSpore 2.10's CPU workers crash with SIGSEGV, so it is not done.)
"""
import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, nn, ops

from src.utils.checkpoint_file import EMA_PREFIX, assign_parameters
from src.utils.errors import UserError
from src.utils.fingerprint import digest_arrays

WARMUP_OFFSET = 10  # decay_t reaches 0.9 after 80 steps, 0.99 after 890, 0.999 after 8,990


def check_ema_decay(decay: float) -> None:
    if not 0.0 <= decay < 1.0:
        raise UserError(f"--ema_decay must be 0 (off) or in (0, 1), e.g. 0.9999; got {decay}")


def _move_unless_skipped(decay, skipped, average, value):
    moved = average * decay + value * (1.0 - decay)
    return ops.assign(average, ops.select(skipped, average, moved))


class EMAUpdate(nn.Cell):
    """One EMA update of every average, in graph mode, after a step that `skipped` or was applied."""

    def __init__(self, params, averages, decay: float, steps_done: int):
        super().__init__(auto_prefix=False)
        self.params, self.averages = ParameterTuple(params), ParameterTuple(averages)
        self.decay = ms.Tensor(decay, ms.float32)
        self.steps = Parameter(ms.Tensor(steps_done, ms.int32), name="ema_update.steps", requires_grad=False)
        self.map = ops.HyperMap()

    def construct(self, skipped):
        steps = self.steps.astype(ms.float32)
        decay = ops.minimum(self.decay, (1.0 + steps) / (WARMUP_OFFSET + steps))  # timm's warm-up
        moved = self.map(ops.partial(_move_unless_skipped, decay, skipped), self.averages, self.params)
        return ops.depend(ops.assign_add(self.steps, ops.logical_not(skipped).astype(ms.int32)), moved)


class WeightsEMA:
    """The EMA of every parameter of `net` (trainable weights and BN statistics), starting at its values;
    `update` is the cell that the training step's graph calls after each step."""

    def __init__(self, net: nn.Cell, decay: float, steps_done: int = 0):
        check_ema_decay(decay)
        params = list(net.get_parameters())
        self.averages = ParameterTuple(params).clone(prefix=EMA_PREFIX.rstrip("."), init="same")
        self._trainable = [average for average, p in zip(self.averages, params) if p.requires_grad]
        self.update = EMAUpdate(params, self.averages, decay, steps_done)

    def entries(self) -> list[dict]:
        """Checkpoint entries `ema.<name>`."""
        return [{"name": average.name, "data": average} for average in self.averages]

    def restore(self, saved: dict[str, np.ndarray]) -> bool:
        """Load the averages from a checkpoint's entries; False (averages unchanged) when it has none."""
        names = {average.name for average in self.averages}
        if not names & set(saved):
            return False
        missing = sorted(names - set(saved))
        if missing:
            raise UserError(f"the checkpoint's EMA lacks {missing[0]} (and {len(missing) - 1} more); it belongs to "
                            "another network")
        assign_parameters({average.name: average for average in self.averages}, {n: saved[n] for n in names})
        return True

    def copy_to(self, net: nn.Cell) -> nn.Cell:
        """Put the averages into `net` (a network of the same architecture) and return it."""
        values = {average.name[len(EMA_PREFIX):]: average.asnumpy() for average in self.averages}
        assign_parameters({p.name: p for p in net.get_parameters()}, values)
        return net

    def fingerprint(self) -> str:
        """Digest of the averages of the trainable weights (not of the BN statistics): ranks must agree."""
        return digest_arrays((average.name, average.asnumpy()) for average in self._trainable)
