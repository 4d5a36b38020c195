"""An exponential moving average (EMA) of the weights and BatchNorm statistics (`--ema_decay`).

After every optimizer step, each average moves towards the network's value:
    average = decay_t * average + (1 - decay_t) * value,   decay_t = min(decay, (1 + t) / (10 + t))
with t the number of steps so far: the warm-up of timm's `ModelEmaV2`/mindcv, so that the early,
random weights are forgotten quickly. The averages are parameters named `ema.<name>`; training
checkpoints hold them, so `--resume` continues the average exactly. In a distributed run the
trainable weights are identical on every rank, and the BN statistics (each rank's own batches) are
averaged over the ranks before they enter the EMA, so every rank keeps the same EMA.
"""
import mindspore as ms
import numpy as np
from mindspore import ParameterTuple, nn, ops

from src.utils.checkpoint_file import EMA_PREFIX, assign_parameters
from src.utils.errors import UserError
from src.utils.fingerprint import digest_arrays

WARMUP_OFFSET = 10  # decay_t reaches 0.9 after 80 steps, 0.99 after 890, 0.999 after 8,990


def check_ema_decay(decay: float) -> None:
    if not 0.0 <= decay < 1.0:
        raise UserError(f"--ema_decay must be 0 (off) or in (0, 1), e.g. 0.9999; got {decay}")


def warmed_decay(decay: float, steps: int) -> float:
    """The decay used at the update after `steps` optimizer steps (timm's warm-up)."""
    return min(decay, (1.0 + steps) / (WARMUP_OFFSET + steps))


def _move(decay, average, value):
    return ops.assign(average, average * decay + value * (1.0 - decay))


def _mean_over_ranks(all_reduce, rank_size, value):
    return all_reduce(value) / rank_size


class _Update(nn.Cell):
    """One EMA update in graph mode; with `rank_size` > 1 the statistics are averaged over the ranks."""

    def __init__(self, weights, statistics, averages_of_weights, averages_of_statistics, rank_size: int):
        super().__init__()
        self.weights, self.statistics = ParameterTuple(weights), ParameterTuple(statistics)
        self.weight_averages = ParameterTuple(averages_of_weights)
        self.statistic_averages = ParameterTuple(averages_of_statistics)
        self.map = ops.HyperMap()
        self.rank_size = rank_size
        self.all_reduce = ops.AllReduce() if rank_size > 1 else None

    def construct(self, decay):
        moved = self.map(ops.partial(_move, decay), self.weight_averages, self.weights)
        statistics = self.statistics
        if self.all_reduce is not None:
            statistics = self.map(ops.partial(_mean_over_ranks, self.all_reduce, self.rank_size), statistics)
        return ops.depend(self.map(ops.partial(_move, decay), self.statistic_averages, statistics), moved)


class WeightsEMA:
    """The EMA of every parameter of `net` (trainable weights and BN statistics), starting at its values."""

    def __init__(self, net: nn.Cell, decay: float, rank_size: int = 1):
        check_ema_decay(decay)
        self.decay = decay
        params = list(net.get_parameters())
        self.averages = ParameterTuple(params).clone(prefix=EMA_PREFIX.rstrip("."), init="same")
        trainable = [index for index, p in enumerate(params) if p.requires_grad]
        other = [index for index, p in enumerate(params) if not p.requires_grad]
        self._update = _Update([params[i] for i in trainable], [params[i] for i in other],
                               [self.averages[i] for i in trainable], [self.averages[i] for i in other], rank_size)

    def update(self, steps: int) -> None:
        """Move the averages after an optimizer step; `steps` = the optimizer steps done before it."""
        self._update(ms.Tensor(warmed_decay(self.decay, steps), ms.float32))

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
        """Digest of every average (statistics included): ranks must agree."""
        return digest_arrays((average.name, average.asnumpy()) for average in self.averages)
