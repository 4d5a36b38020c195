"""Several training steps per host round trip (`--sink_size`), and what the trainer reads at a sink's end.

Reading the loss back after every step makes the host wait for the device, and the device for the
host. Here each step only adds to counters on the device (`SunkSteps`); the host reads them once per
sink of `sink_size` steps (`SunkSteps.read_totals`) and checks them there: the NaN/overflow guarantee,
the log, the LR position and a stop signal all act at a sink's end.

- CPU: MindSpore's `data_sink` refuses the CPU, so a host loop calls the cell `sink_size` times over
  the host iterator (`host_sinks`), with no read-back in between.
- GPU/Ascend: one `ms.data_sink` wrapper (`EpochRunner`) pulls `sink_size` batches on the device per
  call (on Ascend 910A the device itself loops).
"""
from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops

from src.training.ema import WeightsEMA
from src.training.train_step import TrainingDiverged, TrainStep, advice

# The accumulators, one float32 vector so that one read brings them all back (counts are exact to 2^24).
# The first COUNTERS add up and are zeroed at each read; SKIP_RUN (overflowing steps in a row) and SCALE
# (the scale after the last step, i.e. before the next) carry over from sink to sink.
LOSS_SUM, APPLIED, SKIPPED, NONFINITE, AT_FLOOR, LONGEST_RUN, SKIP_RUN, SCALE = range(8)
COUNTERS = AT_FLOOR + 1


@dataclass
class SinkTotals:
    """What the steps since the last read did."""
    loss: float         # mean loss of the applied steps (NaN/inf if one was; NaN if none was applied)
    applied: int        # steps that updated the weights
    skipped: int        # steps whose gradients overflowed (not applied)
    nonfinite: int      # applied steps with a NaN/inf loss: the weights are broken
    loss_scale: float   # the scale after the last step
    at_floor: int = 0   # skipped steps that overflowed at a dynamic scale of 1: no smaller scale can cure them
    longest_run: int = 0  # the most overflowing steps in a row (counting those before this sink) seen in it


class SunkSteps(nn.Cell):
    """The train cell of `train_step`, then the EMA update (when on), adding up each step on the device.

    The accumulators are not parameters of the network, so checkpoints do not change.
    """

    def __init__(self, train_step: TrainStep, ema: WeightsEMA | None):
        super().__init__(auto_prefix=False)  # keep the network's parameter names
        self.train_cell = train_step.cell
        self.checked = train_step.checked
        self.dynamic = train_step.dynamic
        self.ema_update = None if ema is None else ema.update
        self.plain_scale = ms.Tensor([train_step.loss_scale], ms.float32)
        start = np.zeros(SCALE + 1, np.float32)
        start[SCALE] = train_step.loss_scale
        self.totals = Parameter(ms.Tensor(start), name="sunk_steps.totals", requires_grad=False)

    def construct(self, images, labels):
        if self.checked:
            loss, skipped, _ = self.train_cell(images, labels)
            scale = self.train_cell.scale_sense.reshape((1,))  # after this step's update (dynamic scale)
        else:
            loss = self.train_cell(images, labels)
            skipped, scale = ops.zeros((), ms.bool_), self.plain_scale
        loss = loss.astype(ms.float32)
        applied = ops.logical_not(skipped)
        nonfinite = ops.logical_and(applied, ops.logical_not(ops.isfinite(loss)))
        skipped_at_floor = ops.logical_and(skipped, self.totals[SCALE] <= 1) if self.dynamic else ops.zeros_like(skipped)
        step = ops.stack([ops.select(applied, loss, ops.zeros_like(loss)), applied.astype(ms.float32),
                          skipped.astype(ms.float32), nonfinite.astype(ms.float32), skipped_at_floor.astype(ms.float32)])
        if self.ema_update is not None:
            loss = ops.depend(loss, self.ema_update(ops.depend(skipped, loss)))  # after the optimizer's update
        run = ops.select(skipped, self.totals[SKIP_RUN] + 1, ops.zeros_like(self.totals[SKIP_RUN])).reshape((1,))
        longest = ops.maximum(self.totals[LONGEST_RUN:LONGEST_RUN + 1], run)
        added = ops.concat((self.totals[:COUNTERS] + step, longest, run, scale.astype(ms.float32)))
        return ops.depend(loss, ops.assign(self.totals, added))

    def read_totals(self) -> SinkTotals:
        """The one read-back of a sink: its totals, then zero the accumulators."""
        totals = self.totals.asnumpy()
        kept = totals.copy()
        kept[:LONGEST_RUN + 1] = 0
        self.totals.set_data(ms.Tensor(kept))
        totals = totals.astype(np.float64)
        applied = int(totals[APPLIED])
        loss = totals[LOSS_SUM] / applied if applied else float("nan")
        return SinkTotals(float(loss), applied, int(totals[SKIPPED]), int(totals[NONFINITE]), float(totals[SCALE]),
                          int(totals[AT_FLOOR]), int(totals[LONGEST_RUN]))


def steps_text(epoch: int, first: int, last: int, steps_per_epoch: int) -> str:
    """"epoch E step S/N", or "epoch E steps A-B/N" for a sink of several steps."""
    steps = f"step {last}" if first == last else f"steps {first}-{last}"
    return f"epoch {epoch} {steps}/{steps_per_epoch}"


def check_finite(totals: SinkTotals, where: str, last_checkpoint: str | None, max_skipped_steps: int = 0) -> None:
    """Raise `TrainingDiverged` for a NaN/inf loss of an applied step (`where`: the sink's steps_text), or when
    overflowing steps (skipped, the weights untouched) show that training will not recover: more than
    `max_skipped_steps` of them in a row, or one at a dynamic scale that is already at its floor of 1.
    """
    if totals.at_floor:
        raise TrainingDiverged(f"the loss scale collapsed at {where}: the gradients overflowed at a dynamic loss scale "
                               f"of 1, so no smaller scale can help ({advice(last_checkpoint)})")
    if totals.longest_run > max_skipped_steps:
        steps = f"{totals.longest_run} step{'s' if totals.longest_run != 1 else ''}"
        raise TrainingDiverged(f"{steps} in a row overflowed by {where} (more than "
                               f"--max_skipped_steps {max_skipped_steps}; not applied) at the loss scale "
                               f"{totals.loss_scale:g} ({advice(last_checkpoint)})")
    if totals.nonfinite:
        raise TrainingDiverged(f"the loss became {totals.loss} at {where}; the weights are broken and were not saved "
                               f"({advice(last_checkpoint)})")


def host_sinks(batches, run_step, epoch: int, skip: int, sink_size: int):
    """Run one pass over the host iterator `batches` from step skip+1, `run_step(epoch, step_in_epoch,
    images, labels)` per batch; yield (first, last) step after each sink of `sink_size` steps."""
    for step_in_epoch, (images, labels) in enumerate(batches, start=1):  # one pass = one epoch
        if step_in_epoch <= skip:
            continue
        run_step(epoch, step_in_epoch, images, labels)
        if step_in_epoch % sink_size == 0:
            yield step_in_epoch - sink_size + 1, step_in_epoch


class EpochRunner:
    """Runs the epochs of `cell` over `dataset` as sinks of `sink_size` steps: from the host on the CPU,
    with one `ms.data_sink` wrapper on GPU/Ascend (it caches itself on the dataset: one per dataset)."""

    def __init__(self, cell: SunkSteps, run_step, dataset, epochs: int, sink_size: int, device_target: str,
                 rebuild_dataset):
        self.run_step, self.sink_size, self.rebuild_dataset = run_step, sink_size, rebuild_dataset
        self.steps_per_epoch = dataset.get_dataset_size()
        self.host_batches = self.run_sink = None
        if device_target == "CPU":
            self.host_batches = dataset.create_tuple_iterator(num_epochs=epochs)
        else:
            self.run_sink = ms.data_sink(cell, dataset, sink_size=sink_size, jit_config=ms.JitConfig())

    def epoch(self, epoch: int, skip: int):
        """Train epoch `epoch` from its step skip+1; yield (first, last) step after each sink."""
        if self.run_sink is None:  # a resumed epoch continues step by step: its rest need not divide
            return host_sinks(self.host_batches, self.run_step, epoch, skip, 1 if skip else self.sink_size)
        if skip:  # data_sink cannot skip batches: the rest of the epoch from a host iterator, sinking from the next
            batches = self.rebuild_dataset().create_tuple_iterator(num_epochs=1)
            return host_sinks(batches, self.run_step, epoch, skip, 1)
        return self._device_sinks()

    def _device_sinks(self):
        for last in range(self.sink_size, self.steps_per_epoch + 1, self.sink_size):
            self.run_sink()
            yield last - self.sink_size + 1, last
