"""The training run behind train.py: model, optimizer, resume, checkpoints, in-training eval.

Read `Trainer.run` top to bottom: build the data, the network and its starting weights (resume or
pre_trained), the LR schedule from the global step, the optimizer and the train step; then loop
over epochs, logging, evaluating and checkpointing. In a distributed run every rank trains on its
shard; only rank 0 writes files and evaluates.
"""
import os
import time
from dataclasses import dataclass
from typing import Any

import mindspore as ms
import numpy as np
from mindspore import nn

from src.checkpoint import (MOMENT_PREFIX, assign_parameters, find_resume_checkpoint, list_checkpoints,
                            load_checkpoint_file, match_network, read_sidecar, remove_checkpoint,
                            remove_unfinished_saves, save_checkpoint_atomic)
from src.config import Config
from src.CrossEntropySmooth import CrossEntropySmooth
from src.dataset import create_dataset, download_for_training
from src.device import Placement, resolve_amp_level
from src.errors import UserError
from src.evaluate import EvalResult, evaluate
from src.fault_injection import poison_batch
from src.fingerprint import weights_fingerprint
from src.lr_generator import get_lr
from src.sknet50 import create_model
from src.stop_signals import StopRequest, TrainingInterrupted
from src.train_step import (TrainStep, check_finite, check_finite_weights, check_loss_scale_type,
                             optimizer_loss_scale)
from src.train_log import MetricsCSV, TrainLog

BEST_NAME = "best.ckpt"
# Parameters that get no weight decay: BatchNorm scale/shift and every bias.
NO_DECAY_SUFFIXES = (".gamma", ".beta", ".bias")


@dataclass
class RunState:
    """Where training stands; saved in every checkpoint's sidecar."""
    epoch: int = 0          # epochs completed
    global_step: int = 0    # optimizer steps completed (the LR schedule's position)
    step_in_epoch: int = 0  # steps done in the unfinished epoch epoch+1 (a checkpoint saved on a signal)
    best_top1: float | None = None


def output_folder(cfg: Config) -> str:
    """`--output_path`, or the seed's `--checkpoint_path` when that is given instead."""
    return os.path.abspath(cfg.checkpoint_path or cfg.output_path)


def split_weight_decay(params: list, weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer groups: weight decay on conv/dense weights, none on BN parameters and biases."""
    decay = [p for p in params if not p.name.endswith(NO_DECAY_SUFFIXES)]
    no_decay = [p for p in params if p.name.endswith(NO_DECAY_SUFFIXES)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0},
            {"order_params": params}]


def effective_loss_scale(cfg: Config, amp_level: str) -> float:
    """The loss scale to start with: the configured one with mixed precision or a dynamic scale (which
    adapts itself), 1 for a fixed scale in plain fp32."""
    return float(cfg.loss_scale) if amp_level != "O0" or cfg.loss_scale_type == "dynamic" else 1.0


def check_run_settings(cfg: Config) -> None:
    """Counts that must be positive (or, for the intervals, at least zero) before anything starts."""
    for key in ("epoch_size", "batch_size", "eval_batch_size", "save_checkpoint_epochs"):
        if getattr(cfg, key) < 1:
            raise UserError(f"--{key} must be at least 1, got {getattr(cfg, key)}")
    for key in ("eval_interval", "log_interval", "keep_checkpoint_max"):
        if getattr(cfg, key) < 0:
            raise UserError(f"--{key} must be 0 (off) or more, got {getattr(cfg, key)}")


def load_pre_trained(net: nn.Cell, path: str) -> str:
    """Initialise `net` from a MindSpore .ckpt or a timm .safetensors file; return a report line.

    The classifier is skipped when the file has another class count; every other mismatch is a
    `UserError`, so a wrong file never loads partly.
    """
    if path.endswith(".safetensors"):
        from src.convert_timm import convert_timm_state, load_safetensors
        values, skipped = convert_timm_state(load_safetensors(path), net)
    else:
        params, _ = load_checkpoint_file(path)
        values, skipped = match_network(net, params, f"--pre_trained {path}", skip_classifier_on_mismatch=True)
    assign_parameters({p.name: p for p in net.get_parameters()}, values)
    report = f"pre_trained {path}: loaded {len(values)} tensors"
    if skipped:
        report += f"; skipped {', '.join(skipped)} (another class count: the classifier starts fresh)"
    return report


class Trainer:
    """One training run configured by `cfg` on `placement`."""

    def __init__(self, cfg: Config, placement: Placement, stop: StopRequest | None = None):
        self.cfg = cfg
        self.placement = placement
        self.stop = stop or StopRequest()  # an inactive one unless `train` installs it
        self.output = output_folder(cfg)
        self.amp_level = resolve_amp_level(cfg.amp_level, placement.device_target)
        self.loss_scale = effective_loss_scale(cfg, self.amp_level)
        self.prefix = f"[rank {placement.rank_id}] " if placement.rank_size > 1 else ""
        self.last_checkpoint: str | None = None  # the newest training checkpoint of this run (or resumed from)
        check_run_settings(cfg)
        check_loss_scale_type(cfg.loss_scale_type)

    def say(self, text: str) -> None:
        print(f"{self.prefix}{text}", flush=True)

    # ---- setup ----
    def _datasets(self):
        cfg, place = self.cfg, self.placement
        if cfg.download:
            if place.rank_size > 1:
                raise UserError("--download is not done inside a distributed run (ranks would race); run "
                                f"`python -m src.dataset download {os.path.dirname(os.path.abspath(cfg.data_path))}` "
                                "first")
            self.say(download_for_training(cfg.data_path, cfg.download_url, cfg.download_md5))
        common = dict(image_size=cfg.image_size, eval_data_path=cfg.eval_data_path,
                      num_parallel_workers=cfg.num_parallel_workers, seed=cfg.seed, class_num=cfg.class_num)
        train = create_dataset(cfg.data_path, "train", cfg.batch_size, shuffle=cfg.shuffle, augment=cfg.augment,
                               rank_id=place.rank_id, rank_size=place.rank_size, **common)
        evaluation = None
        if place.is_main and cfg.eval_interval > 0:
            evaluation = create_dataset(cfg.data_path, "eval", cfg.eval_batch_size, **common)
        return train, evaluation

    def _resume_source(self) -> str | None:
        resume = self.cfg.resume
        if not resume:
            return None
        if resume != "auto":
            return resume
        found = find_resume_checkpoint(self.output)
        if found is None:
            self.say(f"resume auto: no valid checkpoint in {self.output}; starting from scratch")
            return None
        return found[0]

    def _restore(self, net: nn.Cell, path: str) -> tuple[RunState, dict[str, np.ndarray], dict[str, Any]]:
        """Load a training checkpoint's weights; return its state and optimizer moments."""
        params, meta = load_checkpoint_file(path)
        if meta is None or not meta.get("resumable"):
            raise UserError(f"--resume {path} is not a training checkpoint written by train.py (no integrity "
                            "record with the training state); use --pre_trained to start from its weights")
        values, _ = match_network(net, params, f"--resume {path}")
        assign_parameters({p.name: p for p in net.get_parameters()}, values)
        moments = {name: value for name, value in params.items() if name.startswith(MOMENT_PREFIX)}
        state = RunState(epoch=int(meta["epoch"]), global_step=int(meta["global_step"]),
                         step_in_epoch=int(meta.get("step_in_epoch", 0)), best_top1=meta.get("best_top1"))
        if state.epoch >= self.cfg.epoch_size:
            raise UserError(f"--resume {path} already finished epoch {state.epoch} of --epoch_size "
                            f"{self.cfg.epoch_size}; raise --epoch_size to train longer")
        if meta.get("amp_level") == self.amp_level and meta.get("loss_scale"):
            self.loss_scale = float(meta["loss_scale"])
        return state, moments, meta

    def _learning_rates(self, steps_per_epoch: int, start_step: int) -> np.ndarray:
        cfg = self.cfg
        scale = self.placement.rank_size if cfg.lr_scale_with_devices else 1
        return get_lr(cfg.lr_init * scale, cfg.lr_end * scale, cfg.lr_max * scale, cfg.warmup_epochs,
                      cfg.epoch_size, steps_per_epoch, cfg.lr_decay_mode, start_step=start_step)

    # ---- checkpoints ----
    def _state_entries(self, net: nn.Cell, optimizer: nn.Optimizer) -> list[dict[str, Any]]:
        return ([{"name": p.name, "data": p} for p in net.get_parameters()] +
                [{"name": m.name, "data": m} for m in optimizer.moments])

    def _metadata(self, state: RunState, **extra) -> dict[str, Any]:
        cfg = self.cfg
        return {"epoch": state.epoch, "global_step": state.global_step, "loss_scale": self.loss_scale,
                "amp_level": self.amp_level, "arch": cfg.arch, "stem_type": cfg.stem_type,
                "class_num": cfg.class_num, "image_size": cfg.image_size, "best_top1": state.best_top1, **extra}

    def save_training_checkpoint(self, net, optimizer, state: RunState, steps_per_epoch: int) -> str:
        """Write `{arch}-{epoch}_{step}.ckpt` (weights + momentum + state); keep the newest K.

        After a whole epoch the name ends in `_{steps_per_epoch}`; a checkpoint saved on a signal inside
        epoch E after S steps is `{arch}-E_S.ckpt` (MindSpore's own epoch_step naming).
        """
        epoch, step = (state.epoch + 1, state.step_in_epoch) if state.step_in_epoch else (state.epoch, steps_per_epoch)
        path = os.path.join(self.output, f"{self.cfg.arch}-{epoch}_{step}.ckpt")
        check_finite_weights(net.get_parameters(), f"epoch {epoch} step {step}/{steps_per_epoch}",
                             self.last_checkpoint)
        try:
            save_checkpoint_atomic(self._state_entries(net, optimizer), path,
                                   append_dict={"epoch_num": state.epoch, "step_num": state.global_step},
                                   metadata=self._metadata(state, resumable=True, step_in_epoch=state.step_in_epoch,
                                                           steps_per_epoch=steps_per_epoch))
        except OSError as err:
            raise UserError(f"could not write checkpoint {path}: {err}; free space or pick another "
                            "--output_path, then resume with --resume auto") from err
        self.last_checkpoint = path
        self._prune()
        return path

    def _prune(self) -> None:
        keep = self.cfg.keep_checkpoint_max
        if keep <= 0:
            return
        runs = []
        for path in list_checkpoints(self.output):
            meta = read_sidecar(path) if os.path.basename(path) != BEST_NAME else None
            if meta and meta.get("resumable"):
                runs.append((meta["global_step"], path))
        for _, path in sorted(runs)[:-keep]:
            remove_checkpoint(path)

    def _save_best(self, net, state: RunState, result: EvalResult) -> None:
        path = os.path.join(self.output, BEST_NAME)
        check_finite_weights(net.get_parameters(), f"the end of epoch {state.epoch}", self.last_checkpoint)
        save_checkpoint_atomic(net, path, metadata=self._metadata(state, top1=result.top1, top5=result.top5,
                                                                  resumable=False))

    # ---- the run ----
    def run(self) -> RunState:
        cfg, place = self.cfg, self.placement
        ms.set_seed(cfg.seed)
        if place.is_main:
            os.makedirs(self.output, exist_ok=True)
            for name in remove_unfinished_saves(self.output):
                self.say(f"removed {name}, the temporary file of a save that was interrupted")
        train_data, eval_data = self._datasets()
        steps_per_epoch = train_data.get_dataset_size()
        if steps_per_epoch < 1:
            raise UserError(f"--batch_size {cfg.batch_size} is larger than the training shard of this rank; "
                            "lower --batch_size")

        net = create_model(cfg.arch, cfg.class_num, stem_type=cfg.stem_type, conv_impl=cfg.conv_impl,
                           device_target=place.device_target, zero_init_last=cfg.zero_init_last)
        state, moments = RunState(), {}
        resume_path = self._resume_source()
        if resume_path:
            state, moments, meta = self._restore(net, resume_path)
            check_same_epoch_length(resume_path, meta, state, steps_per_epoch)
            self.say(f"resumed {resume_path}: epoch {state.epoch}, global step {state.global_step}")
        elif cfg.pre_trained:
            self.say(load_pre_trained(net, cfg.pre_trained))

        lr = self._learning_rates(steps_per_epoch, state.global_step)
        optimizer = nn.Momentum(split_weight_decay(net.trainable_params(), cfg.weight_decay), ms.Tensor(lr),
                                cfg.momentum, loss_scale=optimizer_loss_scale(cfg.loss_scale_type, self.loss_scale))
        if resume_path:
            self._restore_moments(optimizer, moments, resume_path)
        loss_fn = CrossEntropySmooth(cfg.label_smooth_factor, cfg.class_num)
        train_step = TrainStep(net, optimizer, loss_fn, self.amp_level, cfg.loss_scale_type, self.loss_scale,
                               place.device_target)

        metrics = None
        if place.is_main:
            cfg.save(os.path.join(self.output, "config.yaml"))
            metrics = MetricsCSV(os.path.join(self.output, "metrics.csv"), resumed_epoch=state.epoch)
        log = TrainLog(cfg.epoch_size, steps_per_epoch, cfg.batch_size * place.rank_size, cfg.log_interval,
                       self.prefix)
        self.say(f"training {cfg.arch} ({cfg.stem_type} stem, {cfg.image_size}px) on {place.device_target}"
                 f"{f' x{place.rank_size}' if place.rank_size > 1 else ''}: {cfg.epoch_size} epochs of "
                 f"{steps_per_epoch} steps, batch {cfg.batch_size} per device, amp {self.amp_level}, "
                 f"{cfg.loss_scale_type} loss scale {self.loss_scale:g}; output in {self.output}")

        start_epoch, first_step, resumed_steps = state.epoch, state.global_step, state.step_in_epoch
        self.last_checkpoint = resume_path
        iterator = train_data.create_tuple_iterator(num_epochs=cfg.epoch_size - start_epoch)
        for epoch in range(start_epoch + 1, cfg.epoch_size + 1):
            log.start_epoch()
            train_step.set_train(True)
            losses, skipped = [], 0
            for step_in_epoch, (images, labels) in enumerate(iterator, start=1):  # one pass = one epoch
                if epoch == start_epoch + 1 and step_in_epoch <= resumed_steps:
                    continue  # trained before the run was stopped inside this epoch
                step_lr = float(lr[state.global_step - first_step])
                result = train_step(poison_batch(images, epoch, step_in_epoch), labels)
                check_finite(result, f"epoch {epoch} step {step_in_epoch}/{steps_per_epoch}", self.last_checkpoint)
                state.step_in_epoch = step_in_epoch % steps_per_epoch
                self.loss_scale = result.loss_scale
                if result.skipped:  # the optimizer did not run, so its LR position did not move either
                    skipped += 1
                else:
                    state.global_step += 1
                    losses.append(result.loss)
                log.step(epoch, step_in_epoch, result.loss, step_lr)
                if self.stop.signum and state.step_in_epoch:
                    self._stop(net, optimizer, state, steps_per_epoch, f"epoch {epoch} step "
                               f"{step_in_epoch}/{steps_per_epoch}")
            state.epoch = epoch
            if skipped:
                self.say(f"epoch {epoch}: skipped {skipped} of {steps_per_epoch} steps whose gradients overflowed "
                         f"(not applied); loss scale now {self.loss_scale:g}")
            epoch_loss = float(np.mean(losses)) if losses else float("nan")
            result = self._maybe_evaluate(net, eval_data, epoch, state)
            eval_text = ""
            if result is not None:
                eval_text = (f"top1 {result.top1:.2%} top5 {result.top5:.2%} (best {state.best_top1:.2%})")
            seconds = log.end_epoch(epoch, epoch_loss, step_lr, eval_text)
            saved = None
            if place.is_main:
                if epoch % cfg.save_checkpoint_epochs == 0 or epoch == cfg.epoch_size:
                    saved = self.save_training_checkpoint(net, optimizer, state, steps_per_epoch)
                metrics.append(epoch=epoch, step=state.global_step, loss=f"{epoch_loss:.6f}", lr=f"{step_lr:.8f}",
                               top1=None if result is None else f"{result.top1:.6f}",
                               top5=None if result is None else f"{result.top5:.6f}", seconds=f"{seconds:.2f}")
            if self.stop.signum and epoch < cfg.epoch_size:
                self._stop(net, optimizer, state, steps_per_epoch, f"the end of epoch {epoch}", saved=saved)
        # Every rank logs it: data-parallel ranks must agree (tests/test_distributed_train.py checks).
        self.say(f"final weights fingerprint {weights_fingerprint(net)}")
        if place.is_main:
            best = f"; best top1 {state.best_top1:.2%} in {BEST_NAME}" if state.best_top1 is not None else ""
            self.say(f"done: {cfg.epoch_size} epochs, {state.global_step} steps, in "
                     f"{time.strftime('%H:%M:%S', time.gmtime(sum(log.epoch_seconds)))}{best}; "
                     f"checkpoints, config.yaml and metrics.csv in {self.output}")
        return state

    def _stop(self, net, optimizer, state: RunState, steps_per_epoch: int, where: str,
              saved: str | None = None) -> None:
        """Save a checkpoint at the current step (rank 0) and raise `TrainingInterrupted`."""
        if self.placement.is_main:
            saved = saved or self.save_training_checkpoint(net, optimizer, state, steps_per_epoch)
            done = f"saved {saved}; to continue, run the same command with --resume auto"
        else:
            done = "rank 0 saves the checkpoint"
        raise TrainingInterrupted(f"{self.prefix}stopped by {self.stop.name} at {where}; {done}", self.stop.signum)

    def _restore_moments(self, optimizer, moments: dict[str, np.ndarray], path: str) -> None:
        expected = {m.name: m for m in optimizer.moments}
        missing = [name for name in expected if name not in moments]
        if missing:
            raise UserError(f"--resume {path} has no optimizer state for {missing[0]} (and {len(missing) - 1} "
                            "more); use --pre_trained to start from its weights")
        assign_parameters(expected, {name: moments[name] for name in expected})

    def _maybe_evaluate(self, net, eval_data, epoch: int, state: RunState) -> EvalResult | None:
        if eval_data is None or epoch % self.cfg.eval_interval:
            return None
        net.set_train(False)
        result = evaluate(lambda images: net(ms.Tensor(images)).asnumpy(), eval_data)
        net.set_train(True)
        if state.best_top1 is None or result.top1 > state.best_top1:
            state.best_top1 = result.top1
            self._save_best(net, state, result)
        return result


def check_same_epoch_length(path: str, meta: dict[str, Any], state: RunState, steps_per_epoch: int) -> None:
    """A checkpoint saved inside an epoch can only continue that epoch if an epoch has as many steps."""
    saved_steps = meta.get("steps_per_epoch", steps_per_epoch)
    if state.step_in_epoch and saved_steps != steps_per_epoch:
        raise UserError(f"--resume {path} was saved after step {state.step_in_epoch} of an epoch of {saved_steps} "
                        f"steps, but an epoch now has {steps_per_epoch}; resume with the run's --batch_size and "
                        "data, or from a checkpoint saved at the end of an epoch")


def train(cfg: Config, placement: Placement) -> RunState:
    """Run training as configured; see `Trainer`.

    SIGTERM and Ctrl-C save a checkpoint at the next step boundary and stop (`TrainingInterrupted`).
    A file that cannot be written (a full disk, no permission) stops the run with one line naming the
    file; checkpoints are written atomically, so the previous ones are intact.
    """
    try:
        with StopRequest() as stop:
            return Trainer(cfg, placement, stop).run()
    except OSError as err:
        raise UserError(f"{err.filename or 'a file'} could not be written or read ({err.strerror or err}); fix "
                        "that (free space, permissions), then continue with --resume auto") from err
