"""What a training run is built from: its data, network, starting weights, LR schedule and optimizer."""
import os
from typing import Any

import mindspore as ms
import numpy as np
from mindspore import nn

from src.convert_timm import convert_timm_state, load_safetensors
from src.data.download import download_for_training
from src.data.pipeline import create_dataset
from src.sknet50 import SKNet, create_model
from src.training.lr_schedule import get_lr
from src.training.train_step import optimizer_loss_scale
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
    """(this rank's training shard, the eval set or None); downloads first with `--download`."""
    if cfg.download:
        if place.rank_size > 1:
            raise UserError("--download is not done inside a distributed run (ranks would race); run "
                            f"`python -m src.data.download {os.path.dirname(os.path.abspath(cfg.data_path))}` "
                            "first")
        say(download_for_training(cfg.data_path, cfg.download_url, cfg.download_md5, cfg.download_sha256))
    train = build_train_dataset(cfg, place)
    evaluation = None
    if place.is_main and cfg.eval_interval > 0:
        evaluation = create_dataset(cfg.data_path, "eval", cfg.eval_batch_size, **_common_data_settings(cfg))
    return train, evaluation


def build_train_dataset(cfg: Config, place: Placement) -> Any:
    """This rank's training shard (GPU/Ascend build a second one for the rest of a resumed epoch)."""
    return create_dataset(cfg.data_path, "train", cfg.batch_size, shuffle=cfg.shuffle, augment=cfg.augment,
                          rank_id=place.rank_id, rank_size=place.rank_size, auto_augment=cfg.auto_augment,
                          cutout=cfg.cutout, **_common_data_settings(cfg))


def _common_data_settings(cfg: Config) -> dict[str, Any]:
    # --deterministic: one data worker, so the seeded random ops always run in the same order.
    workers = 1 if cfg.deterministic else cfg.num_parallel_workers
    return dict(image_size=cfg.image_size, eval_data_path=cfg.eval_data_path, num_parallel_workers=workers,
                seed=cfg.seed, class_num=cfg.class_num)


def build_network(cfg: Config, device_target: str) -> SKNet:
    return create_model(cfg.arch, cfg.class_num, stem_type=cfg.stem_type, zero_init_last=cfg.zero_init_last,
                        conv_impl=resolve_conv_impl(cfg.conv_impl, device_target))


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


def split_weight_decay(params: list, weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer groups: weight decay on conv/dense weights, none on BN parameters and biases."""
    decay = [p for p in params if not p.name.endswith(NO_DECAY_SUFFIXES)]
    no_decay = [p for p in params if p.name.endswith(NO_DECAY_SUFFIXES)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0},
            {"order_params": params}]


def build_optimizer(cfg: Config, net: nn.Cell, lr: np.ndarray, loss_scale: float, device_target: str
                    ) -> nn.Optimizer:
    """SGD with momentum over the per-step `lr`; it unscales the gradients of the plain (CPU, fixed-scale) step."""
    return nn.Momentum(split_weight_decay(net.trainable_params(), cfg.weight_decay), ms.Tensor(lr), cfg.momentum,
                       loss_scale=optimizer_loss_scale(cfg.loss_scale_type, loss_scale, device_target))


def effective_loss_scale(cfg: Config, amp_level: str) -> float:
    """The loss scale to start with: the configured one with mixed precision or a dynamic scale (which
    adapts itself), 1 for a fixed scale in plain fp32."""
    return float(cfg.loss_scale) if amp_level != "O0" or cfg.loss_scale_type == "dynamic" else 1.0
