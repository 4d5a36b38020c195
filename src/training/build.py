"""What a training run is built from: its data, network, starting weights, LR schedule and optimizer."""
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from mindspore import nn

from src.convert_timm import convert_timm_state, load_safetensors
from src.data.download import download_for_training
from src.data.mixing import Mixing
from src.data.pipeline import create_dataset
from src.sknet50 import SKNet, create_model
from src.training.checkpoint_manager import RunState
from src.training.loss import create_loss
from src.training.lr_schedule import get_lr
from src.training.optimizer import create_optimizer
from src.training.train_step import optimizer_loss_scale, resolve_loss_scale_type
from src.utils.checkpoint_file import assign_parameters, load_weights
from src.utils.config import Config
from src.utils.device import Placement, resolve_conv_impl
from src.utils.errors import UserError

# Parameters that get no weight decay: BatchNorm scale/shift and every bias.
NO_DECAY_SUFFIXES = (".gamma", ".beta", ".bias")


def output_folder(cfg: Config) -> str:
    """`--output_path`, or `--checkpoint_path` (the original model-zoo flag) when that is given instead."""
    return os.path.abspath(cfg.checkpoint_path or cfg.output_path)


def build_datasets(cfg: Config, place: Placement, say) -> tuple[Any, Any]:
    """(this rank's training shard, its eval shard or None); downloads first with `--download`."""
    if cfg.download:
        if place.rank_size > 1:
            raise UserError("--download is not done inside a distributed run (ranks would race); run "
                            f"`python -m src.data.download {os.path.dirname(os.path.abspath(cfg.data_path))}` "
                            "first")
        say(download_for_training(cfg.data_path, cfg.download_url, cfg.download_md5, cfg.download_sha256))
    train = build_train_dataset(cfg, place)
    evaluation = None
    if cfg.eval_interval > 0:  # every rank evaluates its own shard (src.evaluation.metrics.sum_across_ranks)
        evaluation = create_dataset(cfg.data_path, "eval", cfg.eval_batch_size, rank_id=place.rank_id,
                                    rank_size=place.rank_size, **_common_data_settings(cfg))
    return train, evaluation


def build_train_dataset(cfg: Config, place: Placement) -> Any:
    """This rank's training shard (GPU/Ascend build a second one for the rest of a resumed epoch)."""
    return create_dataset(cfg.data_path, "train", cfg.batch_size, shuffle=cfg.shuffle, augment=cfg.augment,
                          rank_id=place.rank_id, rank_size=place.rank_size, auto_augment=cfg.auto_augment,
                          cutout=cfg.cutout, randaugment=(cfg.randaugment_num_ops, cfg.randaugment_magnitude),
                          mixing=build_mixing(cfg), **_common_data_settings(cfg))


def build_mixing(cfg: Config) -> Mixing:
    """--mixup/--cutmix/--mixup_prob; the label smoothing moves into the mixed targets."""
    return Mixing(cfg.mixup, cfg.cutmix, cfg.mixup_prob, cfg.label_smooth_factor, cfg.class_num, cfg.seed)


def build_loss(cfg: Config) -> nn.Cell:
    """Soft-target cross-entropy for mixed batches (their targets hold the smoothing), else the smoothed one:
    MindSpore's loss also takes probabilities, but would smooth them a second time."""
    return create_loss(cfg.label_smooth_factor, cfg.class_num, soft_targets=build_mixing(cfg).enabled)


def _common_data_settings(cfg: Config) -> dict[str, Any]:
    # --deterministic: one data worker, so the seeded random ops always run in the same order.
    workers = 1 if cfg.deterministic else cfg.num_parallel_workers
    return dict(image_size=cfg.image_size, eval_data_path=cfg.eval_data_path, num_parallel_workers=workers,
                seed=cfg.seed, class_num=cfg.class_num)


def build_network(cfg: Config, device_target: str) -> SKNet:
    return create_model(cfg.arch, cfg.class_num, stem_type=cfg.stem_type, zero_init_last=cfg.zero_init_last,
                        conv_impl=resolve_conv_impl(cfg.conv_impl, device_target),
                        drop_path_rate=cfg.drop_path_rate)


def load_pre_trained(net: nn.Cell, path: str) -> str:
    """Initialise `net` from a MindSpore .ckpt or a timm .safetensors file; return a report line.

    The classifier is skipped when the file has another class count; every other mismatch is a
    `UserError`, so a wrong file never loads partly.
    """
    if path.endswith(".safetensors"):
        values, skipped = convert_timm_state(load_safetensors(path), net)
        assign_parameters({p.name: p for p in net.get_parameters()}, values)
        loaded = len(values)
    else:
        _, skipped, _ = load_weights(net, path, f"--pre_trained {path}", skip_classifier_on_mismatch=True)
        loaded = len(list(net.get_parameters())) - len(skipped)
    report = f"pre_trained {path}: loaded {loaded} tensors"
    if skipped:
        report += f"; skipped {', '.join(skipped)} (another class count: the classifier starts fresh)"
    return report


def learning_rates(cfg: Config, rank_size: int, steps_per_epoch: int, start_step: int) -> np.ndarray:
    """The LR of every step from `start_step` on; scaled by the device count with `lr_scale_with_devices`."""
    scale = rank_size if cfg.lr_scale_with_devices else 1
    return get_lr(cfg.lr_init * scale, cfg.lr_end * scale, cfg.lr_max * scale, cfg.warmup_epochs,
                  cfg.epoch_size, steps_per_epoch, cfg.lr_decay_mode, start_step=start_step)


@dataclass
class Schedule:
    """The LR of each optimizer step this run takes (from its first), and the lines that explain it."""
    lr: np.ndarray
    notes: list[str]


def plan_learning_rates(cfg: Config, rank_size: int, steps_per_epoch: int, state: RunState,
                        saved: dict[str, Any] | None = None, source: str = "") -> Schedule:
    """The schedule of these flags (`learning_rates`), entered where `state` stands.

    The position is the images seen (`state.images_seen`) over this run's global batch, so a resume with
    another --batch_size or device count continues at the same point of training, and one with another
    --epoch_size continues the new, longer or shorter schedule at the images seen. `saved` is the sidecar
    of the checkpoint resumed (`source`): when the schedule changes, a line names the change and the LR's
    jump. A sidecar from before `images_seen` was recorded keeps the step index, with a line saying so.
    The few steps that partial batches can add past the schedule's end train at its last LR.
    """
    notes, images_per_step = [], cfg.batch_size * rank_size
    if cfg.warmup_epochs >= cfg.epoch_size:
        notes.append(f"warning: --warmup_epochs {cfg.warmup_epochs:g} covers all {cfg.epoch_size} epochs, so the LR "
                     f"only rises towards --lr_max and never decays to --lr_end; pass a --warmup_epochs below "
                     f"{cfg.epoch_size} (e.g. {cfg.epoch_size / 5:g}) for a schedule that decays")
    full = learning_rates(cfg, rank_size, steps_per_epoch, 0)
    older = state.images_seen is None
    if older:  # an older sidecar: the step index, as train.py did before
        start = state.global_step
        notes.append(f"resume: {source} does not record the images seen (an older train.py wrote it); the LR "
                     f"schedule continues at step {start}, which is right only with the run's --batch_size, device "
                     "count and data")
        state.images_seen = start * images_per_step
    else:
        start = state.images_seen // images_per_step  # whole steps: never ahead of the images seen
    if start >= len(full):
        where = (f"is at step {start} (its sidecar does not record the images seen, so the position is the step "
                 "index)" if older else f"has seen {state.images_seen} images")
        raise UserError(f"--resume {source} {where}, past the end of the new LR schedule ({cfg.epoch_size} epochs of "
                        f"{steps_per_epoch} steps of {images_per_step} images); raise --epoch_size to at least "
                        f"{start // steps_per_epoch + 1}" + (", or resume with the run's --batch_size and device count"
                                                             if older else ""))
    run_steps = (cfg.epoch_size - state.epoch) * steps_per_epoch - state.step_in_epoch
    lr = full[start:]
    if len(lr) < run_steps:
        lr = np.concatenate([lr, np.full(run_steps - len(lr), full[-1], np.float32)])
    if saved is not None:
        notes += _schedule_changes(cfg, rank_size, steps_per_epoch, state, saved, source, start, len(full), lr)
    return Schedule(lr, notes)


def _schedule_changes(cfg: Config, rank_size: int, steps_per_epoch: int, state: RunState, saved: dict[str, Any],
                      source: str, start: int, total: int, lr: np.ndarray) -> list[str]:
    """The line that says how a resume changes the LR schedule (none when it does not)."""
    changed = [f"{name} {saved[key]} -> {now}" for name, key, now in (
        ("--batch_size", "batch_size", cfg.batch_size), ("devices", "device_num", rank_size),
        ("--epoch_size", "epoch_size", cfg.epoch_size), ("steps per epoch", "steps_per_epoch", steps_per_epoch))
        if saved.get(key) is not None and saved[key] != now]
    if state.step_in_epoch and any(c.startswith(("--batch_size", "devices")) for c in changed):
        raise UserError(f"--resume {source} was saved inside an epoch with --batch_size {saved['batch_size']} on "
                        f"{saved['device_num']} device(s), whose data position another batch cannot continue; "
                        "resume with those, or from a checkpoint saved at the end of an epoch")
    before = saved.get("next_lr")
    jumps = isinstance(before, float) and not np.isclose(before, lr[0], rtol=1e-5, atol=1e-9)
    if not changed and not jumps:
        return []
    why = ", ".join(changed) or "another LR setting"
    jump = f"the LR goes from {before:.6g} to {lr[0]:.6g}" if isinstance(before, float) else f"the LR is {lr[0]:.6g}"
    line = (f"resume: the LR schedule changes ({why}); it continues by the {state.images_seen} images seen at "
            f"step {start} of {total}, and {jump}")
    extra = start + len(lr) - total
    if extra > 0:
        line += f"; the last {extra} steps (partial batches) keep its last LR" if extra > 1 else \
            "; the last step (partial batches) keeps its last LR"
    return [line]


def split_weight_decay(params: list, weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer groups: weight decay on conv/dense weights, none on BN parameters and biases."""
    decay = [p for p in params if not p.name.endswith(NO_DECAY_SUFFIXES)]
    no_decay = [p for p in params if p.name.endswith(NO_DECAY_SUFFIXES)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0},
            {"order_params": params}]


def build_optimizer(cfg: Config, net: nn.Cell, lr: np.ndarray, loss_scale: float, device_target: str
                    ) -> nn.Optimizer:
    """`--optimizer` over the per-step `lr`; it unscales the gradients of the plain (CPU, fixed-scale) step."""
    return create_optimizer(cfg.optimizer, split_weight_decay(net.trainable_params(), cfg.weight_decay), lr,
                            cfg.momentum, optimizer_loss_scale(cfg.loss_scale_type, loss_scale, device_target),
                            cfg.grad_clip_norm)


def effective_loss_scale(cfg: Config, amp_level: str) -> float:
    """The loss scale to start with: the configured one with mixed precision or a dynamic scale (which
    adapts itself), 1 for a fixed scale in plain fp32."""
    dynamic = resolve_loss_scale_type(cfg.loss_scale_type, cfg.device_target) == "dynamic"
    return float(cfg.loss_scale) if amp_level != "O0" or dynamic else 1.0
