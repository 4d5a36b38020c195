"""The training run behind train.py: the epoch loop, top to bottom.

`Trainer.run` builds the run (`src.training.build`), resumes or loads pre-trained weights, and
loops over epochs: train, evaluate, checkpoint (`src.training.checkpoint_manager`). In a
distributed run every rank trains and evaluates on its shard (the counts are summed); only rank 0 writes files.
"""
import os
import time
from contextlib import ExitStack, nullcontext

import mindspore as ms
import numpy as np

from src.evaluation.metrics import EvalResult, evaluate, sum_across_ranks
from src.evaluation.predict import Predictor, images_per_call
from src.model_summary import summary_line
from src.training.build import (build_datasets, build_loss, build_network, build_optimizer, build_train_dataset,
                                effective_loss_scale, load_pre_trained, output_folder, plan_learning_rates)
from src.training.checkpoint_manager import BEST_NAME, CheckpointManager, RunState, remove_unfinished_saves
from src.training.ema import WeightsEMA
from src.training.plot import PNG_NAME, plot_metrics
from src.training.rank0_statistics import use_rank0_statistics
from src.training.resume_agreement import check_ranks_agree
from src.training.run_folder import RunFolderLock, deleted_folder_error, refuse_used_folder
from src.training.stop_signals import StopRequest, TrainingInterrupted
from src.training.sunk_steps import EpochRunner, SunkSteps, check_finite, steps_text
from src.training.train_log import MetricsCSV, TrainLog
from src.training.train_step import TrainStep
from src.utils.config import Config
from src.utils.config_rules import validate
from src.utils.device import Placement, resolve_amp_level, resolve_sink_size
from src.utils.errors import UserError
from src.utils.fingerprint import weights_fingerprint


class Trainer:
    """One training run configured by `cfg` on `placement`."""

    def __init__(self, cfg: Config, placement: Placement, stop: StopRequest | None = None):
        validate(cfg.to_dict())  # load_config did it too; a Trainer may also be built from a Config in code
        if cfg.overwrite and cfg.resume:
            raise UserError("--overwrite true would delete the run that --resume continues; pass only one of them")
        self.cfg = cfg
        self.placement = placement
        self.stop = stop or StopRequest()  # an inactive one unless `train` installs it
        self.output = output_folder(cfg)
        self.amp_level = resolve_amp_level(cfg.amp_level, placement.device_target)
        self.checkpoints = CheckpointManager(cfg, self.output, self.amp_level)
        self.checkpoints.loss_scale = effective_loss_scale(cfg, self.amp_level)
        self.prefix = f"[rank {placement.rank_id}] " if placement.rank_size > 1 else ""
        self._curves_off = False
        self.ema: WeightsEMA | None = None
        self._ema_net = None  # the network the EMA is copied into for evaluation

    def say(self, text: str) -> None:
        print(f"{self.prefix}{text}", flush=True)

    def run(self) -> RunState:
        cfg, place = self.cfg, self.placement
        ms.set_seed(cfg.seed)
        self._prepare_output()
        train_data, self.eval_data = build_datasets(cfg, place, self.say)
        self.steps_per_epoch = train_data.get_dataset_size()
        if self.steps_per_epoch < 1:
            raise UserError(f"--batch_size {cfg.batch_size} is larger than the training shard of this rank; "
                            "lower --batch_size")
        self.sink_size = resolve_sink_size(cfg.sink_size, place.device_target, self.steps_per_epoch)
        self.net = build_network(cfg, place.device_target)
        self.say(summary_line(self.net, cfg.arch, cfg.image_size))
        state, moments, resumed_from = self._starting_point()
        schedule = plan_learning_rates(cfg, place.rank_size, self.steps_per_epoch, state,
                                       self.checkpoints.resumed_meta, resumed_from or "")
        lr, self.checkpoints.device_num = schedule.lr, place.rank_size
        for note in schedule.notes:
            self.say(note)
        self.optimizer = build_optimizer(cfg, self.net, lr, self.checkpoints.loss_scale, place.device_target)
        if resumed_from:
            self.checkpoints.restore_moments(self.optimizer, moments, resumed_from)
        self._start_ema(moments, resumed_from, state.global_step)
        loss_fn = build_loss(cfg)
        self.sunk = SunkSteps(TrainStep(self.net, self.optimizer, loss_fn, self.amp_level, cfg.loss_scale_type,
                                        self.checkpoints.loss_scale, place.device_target), self.ema)
        self.runner = EpochRunner(self.sunk, self._step, train_data, cfg.epoch_size - state.epoch, self.sink_size,
                                  place.device_target, lambda: build_train_dataset(cfg, place))
        self.stop.agreed(place.rank_size)
        self.stop.check("during start-up, before training")  # before the run's files: the folder stays unused
        self.metrics = self._start_run_files(state)
        self.log = TrainLog(cfg.epoch_size, self.steps_per_epoch, cfg.batch_size * place.rank_size,
                            cfg.log_interval, self.prefix)
        self._announce()

        first_step, skip = state.global_step, state.step_in_epoch
        for epoch in range(state.epoch + 1, cfg.epoch_size + 1):
            loss, last_lr = self._train_epoch(epoch, state, skip, lr[state.global_step - first_step:])
            skip = 0  # only the resumed epoch had steps trained before the stop
            self._end_epoch(epoch, state, loss, last_lr)
        self._finish(state)
        if self.stop.signum:
            raise TrainingInterrupted(f"stopped by {self.stop.name} at the end of the run; every epoch is done and "
                                      "saved", self.stop.signum)
        return state

    def _prepare_output(self) -> None:
        """Rank 0, holding the folder's lock: refuse (or, with --overwrite, clear) another run's files,
        then delete the temporary files of saves that were killed."""
        if self.placement.is_main:
            os.makedirs(self.output, exist_ok=True)
            if not self.cfg.resume:
                removed = refuse_used_folder(self.output, self.cfg.overwrite)
                if removed:
                    self.say(f"--overwrite: deleted the previous run's {len(removed)} files in {self.output}: "
                             f"{', '.join(removed)}")
            for name in remove_unfinished_saves(self.output):
                self.say(f"removed {name}, the temporary file of a save that was interrupted")

    def _starting_point(self) -> tuple[RunState, dict[str, np.ndarray], str | None]:
        """(state, optimizer moments, checkpoint resumed from): `--resume`, else `--pre_trained`, else fresh."""
        path = self.checkpoints.resume_source()
        if self.cfg.resume:  # on several machines each rank looks in its own folder
            check_ranks_agree(path, self.placement.rank_id, self.placement.rank_size)
        if path:
            state, moments = self.checkpoints.restore(self.net, path, self.steps_per_epoch)
            self.say(f"resumed {path}: epoch {state.epoch}, global step {state.global_step}")
            return state, moments, path
        if self.cfg.resume == "auto":
            self.say(f"resume auto: no valid checkpoint in {self.output}; starting from scratch")
        if self.cfg.pre_trained:
            self.say(load_pre_trained(self.net, self.cfg.pre_trained))
        return RunState(), {}, None

    def _start_run_files(self, state: RunState) -> MetricsCSV | None:
        if not self.placement.is_main:
            return None
        self.cfg.save(os.path.join(self.output, "config.yaml"))
        return MetricsCSV(os.path.join(self.output, "metrics.csv"), resumed_epoch=state.epoch)

    def _announce(self) -> None:
        cfg, place = self.cfg, self.placement
        self.say(f"training {cfg.arch} ({cfg.stem_type} stem, {cfg.image_size}px) on {place.device_target}"
                 f"{f' x{place.rank_size}' if place.rank_size > 1 else ''}: {cfg.epoch_size} epochs of "
                 f"{self.steps_per_epoch} steps, batch {cfg.batch_size} per device, amp {self.amp_level}, "
                 f"{'dynamic' if self.sunk.dynamic else 'fixed'} loss scale {self.checkpoints.loss_scale:g}, {self.sink_size} steps per sink; "
                 f"output in {self.output}")

    def _train_epoch(self, epoch: int, state: RunState, skip: int, lr: np.ndarray) -> tuple[float, float]:
        """Train one pass over the data from its step skip+1, checking each sink at its end; return the mean
        loss of the applied steps and the last LR.

        `lr[i]` is the LR of the i-th optimizer step from here on (skipped overflow steps do not advance it).
        """
        self.log.start_epoch()
        self.sunk.set_train(True)
        loss_sum, applied, overflowed, step_lr = 0.0, 0, 0, float(lr[0])
        for first, last in self.runner.epoch(epoch, skip):
            totals = self.sunk.read_totals()
            check_finite(totals, steps_text(epoch, first, last, self.steps_per_epoch), self.checkpoints.last,
                         self.cfg.max_skipped_steps)
            step_lr = float(lr[applied + max(totals.applied - 1, 0)])  # the sink's last applied step's
            if totals.applied:
                loss_sum += totals.loss * totals.applied
            applied, overflowed = applied + totals.applied, overflowed + totals.skipped
            state.global_step += totals.applied
            state.images_seen += totals.applied * self.log.images_per_step
            self.checkpoints.next_lr = float(lr[min(applied, len(lr) - 1)])  # the schedule's position, saved
            state.step_in_epoch = last % self.steps_per_epoch
            self.checkpoints.loss_scale = totals.loss_scale
            self.log.steps(epoch, last, last - first + 1, totals.loss, step_lr,
                           (totals.skipped, totals.loss_scale) if self.sunk.checked else None)
            if self.stop.agreed(self.placement.rank_size) and state.step_in_epoch:
                self._stop(state, steps_text(epoch, last, last, self.steps_per_epoch))
        if overflowed:
            self.say(f"epoch {epoch}: skipped {overflowed} of {self.steps_per_epoch} steps whose gradients overflowed "
                     f"(not applied); loss scale now {self.checkpoints.loss_scale:g}")
        self.skipped_in_epoch = overflowed
        return (loss_sum / applied if applied else float("nan")), step_lr

    def _step(self, epoch: int, step_in_epoch: int, images, labels) -> None:
        """One step from the host, not read back; `epoch` and `step_in_epoch` name it (tests inject faults at a
        named step)."""
        self.sunk(images, labels)

    def _end_epoch(self, epoch: int, state: RunState, epoch_loss: float, step_lr: float) -> None:
        """Evaluate, log, checkpoint and write the metrics row of a finished epoch; stop if asked to."""
        cfg = self.cfg
        state.epoch = epoch
        result = self._maybe_evaluate(epoch, state)
        eval_text = "" if result is None or not self.placement.is_main else \
            f"top1 {result.top1:.2%} top5 {result.top5:.2%} (best {state.best_top1:.2%})"
        seconds = self.log.end_epoch(epoch, epoch_loss, step_lr, eval_text)
        saved = None
        if self.placement.is_main:
            # The row goes first: a kill between the two leaves a row that the resume drops and writes again,
            # never a checkpoint whose epoch has no row.
            self.metrics.append(epoch=epoch, step=state.global_step, loss=f"{epoch_loss:.6f}", lr=f"{step_lr:.8f}",
                                top1=None if result is None else f"{result.top1:.6f}",
                                top5=None if result is None else f"{result.top5:.6f}", seconds=f"{seconds:.2f}",
                                skipped=self.skipped_in_epoch, loss_scale=f"{self.checkpoints.loss_scale:g}")
            if epoch % cfg.save_checkpoint_epochs == 0 or epoch == cfg.epoch_size:
                saved = self._save(state)
            self._draw_curves()
        if self.stop.agreed(self.placement.rank_size) and epoch < cfg.epoch_size:
            self._stop(state, f"the end of epoch {epoch}", saved=saved)

    def _draw_curves(self) -> None:
        """Redraw metrics.png from metrics.csv; without matplotlib, say so once and train on."""
        if self._curves_off:
            return
        try:
            plot_metrics(self.metrics.path, os.path.join(self.output, PNG_NAME))
        except UserError as err:
            self._curves_off = True
            self.say(f"warning: {err}; training goes on without {PNG_NAME}")

    def _start_ema(self, saved: dict[str, np.ndarray], resumed_from: str | None, global_step: int) -> None:
        """With --ema_decay: the EMA starts at the starting weights, or continues the resumed checkpoint's."""
        if not self.cfg.ema_decay:
            return
        self.ema = WeightsEMA(self.net, self.cfg.ema_decay, steps_done=global_step)
        if resumed_from and not self.ema.restore(saved):
            self.say(f"warning: {resumed_from} holds no EMA (trained without --ema_decay); the EMA starts from its "
                     "weights")

    def _save(self, state: RunState) -> str:
        extra = self.ema.entries() if self.ema is not None else None
        return self.checkpoints.save(self.net, self.optimizer, state, self.steps_per_epoch, extra)

    def _evaluated_network(self):
        """The network the in-training evaluation and best.ckpt use: the EMA when it is on."""
        if self.ema is None:
            return self.net
        if self._ema_net is None:
            self._ema_net = build_network(self.cfg, self.placement.device_target)
            self._ema_net.set_train(False)
        return self.ema.copy_to(self._ema_net)

    def _maybe_evaluate(self, epoch: int, state: RunState) -> EvalResult | None:
        if self.eval_data is None or epoch % self.cfg.eval_interval:
            return None
        net = self._evaluated_network()
        use_rank0_statistics(net, self.placement.rank_size)
        net.set_train(False)
        result = evaluate(Predictor(net, images_per_call(self.cfg.image_size, self.placement.device_target)),
                          self.eval_data)
        result = sum_across_ranks(result, self.placement.rank_size)
        self.net.set_train(True)
        if state.best_top1 is None or result.top1 > state.best_top1:
            state.best_top1 = result.top1
            if self.placement.is_main:
                self.checkpoints.save_best(net, state, result.top1, result.top5,
                                           "trained" if self.ema is None else "ema")
        return result

    def _stop(self, state: RunState, where: str, saved: str | None = None) -> None:
        """Save a checkpoint at the current step (rank 0) and raise `TrainingInterrupted`."""
        if self.placement.is_main:
            saved = saved or self._save(state)
            done = f"saved {saved}; to continue, run the same command with --resume auto"
        else:
            done = "rank 0 saved the checkpoint"
        self.stop.agreed(self.placement.rank_size)  # no rank ends before rank 0 has saved
        raise TrainingInterrupted(f"{self.prefix}stopped by {self.stop.name} at {where}; {done}", self.stop.signum)

    def _finish(self, state: RunState) -> None:
        # Every rank logs the fingerprint: data-parallel ranks must agree.
        self.say(f"final weights fingerprint {weights_fingerprint(self.net)}")
        if self.ema is not None:
            self.say(f"final EMA fingerprint {self.ema.fingerprint()}")
        if self.placement.is_main:
            best = f"; best top1 {state.best_top1:.2%} in {BEST_NAME}" if state.best_top1 is not None else ""
            self.say(f"done: {self.cfg.epoch_size} epochs, {state.global_step} steps, in "
                     f"{time.strftime('%H:%M:%S', time.gmtime(sum(self.log.epoch_seconds)))}{best}; "
                     f"checkpoints, config.yaml and metrics.csv in {self.output}")


def train(cfg: Config, placement: Placement, stop: StopRequest | None = None) -> RunState:
    """Run training as configured; see `Trainer`.

    SIGTERM and Ctrl-C save a checkpoint at the end of the current sink (`--sink_size` steps) and stop
    (`TrainingInterrupted`); train.py passes the `stop` it started before MindSpore loaded.
    A file that cannot be written (a full disk, no permission) stops the run with one line naming the
    file; checkpoints are written atomically, so the previous ones are intact.
    """
    try:
        with nullcontext(stop) if stop else StopRequest() as stop, ExitStack() as held:
            trainer = Trainer(cfg, placement, stop)
            if placement.is_main:  # the one writer of the folder holds its lock until the run ends
                held.enter_context(RunFolderLock(trainer.output))
            return trainer.run()
    except OSError as err:
        if placement.is_main and deleted_folder_error(output_folder(cfg)):
            raise deleted_folder_error(output_folder(cfg)) from err
        raise UserError(f"{err.filename or 'a file'} could not be written or read ({err.strerror or err}); fix "
                        "that (free space, permissions), then continue with --resume auto") from err
