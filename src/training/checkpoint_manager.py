"""The checkpoints of one training run: their names, saving, pruning, `best.ckpt`, and resuming.

A training checkpoint `{arch}-{epoch}_{step}.ckpt` holds the weights and the optimizer moments;
its sidecar holds the run state (`RunState`), so a run resumes exactly where it stopped. After a
whole epoch the name ends in `_{steps_per_epoch}`; a checkpoint saved on a signal inside epoch E
after S steps is `{arch}-E_S.ckpt` (MindSpore's own epoch_step naming).

Lineage: every save records `save_index` (one more than any in the folder) and `parent_index`, the
save it continues (the checkpoint resumed from, or the previous save). Resuming an older checkpoint
starts a new branch; the newest save is the run's state, the checkpoints on its parent chain are its
history, and the rest belong to the abandoned branch. Pruning verifies every file before ranking,
keeps the newest K of the lineage, never deletes the newest save, and deletes the abandoned branch
only once the new branch has a save that verifies.
"""
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from mindspore import nn

from src.training.run_folder import deleted_folder_error
from src.training.train_step import check_finite_weights
from src.utils.atomic_file import TEMP_PREFIX, remove_if_present
from src.utils.checkpoint_file import (EMA_PREFIX, MOMENT_PREFIX, SIDECAR_SUFFIX, CorruptCheckpoint, assign_parameters,
                                       list_checkpoints, load_weights, read_sidecar, save_checkpoint_atomic,
                                       sidecar_path, verify_checkpoint)
from src.utils.config import Config
from src.utils.errors import UserError

BEST_NAME = "best.ckpt"


@dataclass
class RunState:
    """Where training stands; saved in every checkpoint's sidecar."""
    epoch: int = 0          # epochs completed
    global_step: int = 0    # optimizer steps completed, over every resume
    step_in_epoch: int = 0  # steps done in the unfinished epoch epoch+1 (a checkpoint saved on a signal)
    best_top1: float | None = None
    # images of the applied steps, over every resume: the LR schedule's position (src.training.build.
    # plan_learning_rates); None when resumed from an older sidecar that lacks it
    images_seen: int | None = 0


class CheckpointManager:
    """Saves, prunes and restores the checkpoints of the run configured by `cfg` in `folder`."""

    def __init__(self, cfg: Config, folder: str, amp_level: str):
        self.cfg = cfg
        self.folder = folder
        self.amp_level = amp_level
        self.loss_scale = 0.0    # the trainer keeps it current; saved with every checkpoint
        self.last: str | None = None  # the newest training checkpoint of this run (or the one resumed)
        self.device_num = 1      # the trainer sets it; saved with every checkpoint for a resume's LR position
        self.next_lr: float | None = None  # the LR of the next step; the trainer keeps it current
        self.resumed_meta: dict[str, Any] | None = None  # the sidecar of the checkpoint resumed
        self.parent_index: int | None = None  # the `save_index` of `last`: the parent of the next save
        self._verified: dict[str, tuple[tuple, dict[str, Any] | None]] = {}  # path -> (stat key, sidecar)

    def _metadata(self, state: RunState, **extra) -> dict[str, Any]:
        cfg = self.cfg
        return {"epoch": state.epoch, "global_step": state.global_step, "loss_scale": self.loss_scale,
                "amp_level": self.amp_level, "arch": cfg.arch, "stem_type": cfg.stem_type,
                "class_num": cfg.class_num, "image_size": cfg.image_size, "best_top1": state.best_top1,
                "images_seen": state.images_seen, "batch_size": cfg.batch_size, "device_num": self.device_num,
                "epoch_size": cfg.epoch_size, "next_lr": self.next_lr, **extra}

    def save(self, net: nn.Cell, optimizer: nn.Optimizer, state: RunState, steps_per_epoch: int,
             extra_entries: list[dict] | None = None) -> str:
        """Write the training checkpoint of `state` (weights, momentum, `extra_entries` such as the EMA,
        run state); keep the newest K."""
        epoch, step = (state.epoch + 1, state.step_in_epoch) if state.step_in_epoch else (state.epoch, steps_per_epoch)
        path = os.path.join(self.folder, f"{self.cfg.arch}-{epoch}_{step}.ckpt")
        check_finite_weights(net.get_parameters(), f"epoch {epoch} step {step}/{steps_per_epoch}", self.last)
        entries = ([{"name": p.name, "data": p} for p in net.get_parameters()] +
                   [{"name": m.name, "data": m} for m in optimizer.moments] + list(extra_entries or []))
        try:
            index = 1 + max((i for i in map(_index, _sidecars(self.folder).values()) if i is not None), default=0)
            save_checkpoint_atomic(entries, path, append_dict={"epoch_num": state.epoch, "step_num": state.global_step},
                                   metadata=self._metadata(state, resumable=True, step_in_epoch=state.step_in_epoch,
                                                           steps_per_epoch=steps_per_epoch, save_index=index,
                                                           parent_index=self.parent_index))
        except OSError as err:
            raise deleted_folder_error(self.folder) or UserError(
                f"could not write checkpoint {path}: {err}; free space or pick another --output_path, then resume "
                "with --resume auto") from err
        self.last, self.parent_index = path, index
        self.prune()
        return path

    def _verify(self, path: str) -> dict[str, Any] | None:
        """`verify_checkpoint`, remembered while the file's size, inode and mtime stay the same."""
        info = os.stat(path)
        key = (info.st_ino, info.st_size, info.st_mtime_ns)
        cached = self._verified.get(path)
        if cached is None or cached[0] != key:
            cached = self._verified[path] = (key, verify_checkpoint(path))
        return dict(cached[1]) if cached[1] is not None else None

    def prune(self) -> None:
        """Keep the `keep_checkpoint_max` newest verified checkpoints of the newest save's lineage; delete
        the abandoned branch's checkpoints once the newest save verifies. Damaged files are never deleted."""
        keep = self.cfg.keep_checkpoint_max
        if keep <= 0:
            return
        valid = {}
        for path in list_checkpoints(self.folder):
            if os.path.basename(path) == BEST_NAME:
                continue
            try:
                meta = self._verify(path)
            except UserError as err:  # never deleted, never fatal: a damaged file is not evidence of anything
                print(f"warning: not pruning {path}: {err}", file=sys.stderr, flush=True)
                continue
            if meta and meta.get("resumable") and isinstance(meta.get("global_step"), int):
                valid[path] = meta
        newest = self.last or max(valid, key=lambda path: save_order(valid[path]), default=None)
        if newest not in valid:  # the newest save does not verify: delete nothing
            return
        lineage = lineage_indices(self.folder, valid[newest])
        history = [path for path, meta in valid.items() if _index(meta) is None or _index(meta) in lineage]
        abandoned = [path for path in valid if path not in history]
        history.sort(key=lambda path: save_order(valid[path]))
        for path in abandoned + [p for p in history[:-keep] if p != newest]:
            remove_checkpoint(path)

    def save_best(self, net: nn.Cell, state: RunState, top1: float, top5: float, weights: str = "trained") -> None:
        """Write `best.ckpt` (weights only, with its accuracy and `weights`, "trained" or "ema", in the sidecar)."""
        check_finite_weights(net.get_parameters(), f"the end of epoch {state.epoch}", self.last)
        save_checkpoint_atomic(net, os.path.join(self.folder, BEST_NAME),
                               metadata=self._metadata(state, top1=top1, top5=top5, resumable=False, weights=weights,
                                                       parent_index=self.parent_index))

    def resume_source(self) -> str | None:
        """The checkpoint `--resume` names: a path, the newest valid one for `auto`, or None."""
        resume = self.cfg.resume
        if resume and resume != "auto" and os.path.isdir(resume):
            raise UserError(f"--resume {resume} is a folder; pass a checkpoint file in it (.ckpt), or --resume auto "
                            f"to continue the newest checkpoint in --output_path")
        if resume != "auto":
            return resume or None
        found = find_resume_checkpoint(self.folder)
        return None if found is None else found[0]

    def restore(self, net: nn.Cell, path: str, steps_per_epoch: int) -> tuple[RunState, dict[str, np.ndarray]]:
        """Load a training checkpoint's weights into `net`; return its run state and its optimizer moments
        and EMA entries."""
        meta, _, rest = load_weights(net, path, f"--resume {path}")
        if meta is None or not meta.get("resumable"):
            raise UserError(f"--resume {path} is not a training checkpoint written by train.py (no integrity "
                            "record with the training state); use --pre_trained to start from its weights")
        state = RunState(epoch=int(meta["epoch"]), global_step=int(meta["global_step"]),
                         step_in_epoch=int(meta.get("step_in_epoch", 0)), best_top1=meta.get("best_top1"),
                         images_seen=meta["images_seen"] if isinstance(meta.get("images_seen"), int) else None)
        if state.epoch >= self.cfg.epoch_size:
            raise UserError(f"--resume {path} already finished epoch {state.epoch} of --epoch_size "
                            f"{self.cfg.epoch_size}; raise --epoch_size to train longer")
        saved_steps = meta.get("steps_per_epoch", steps_per_epoch)
        if state.step_in_epoch and saved_steps != steps_per_epoch:
            raise UserError(f"--resume {path} was saved after step {state.step_in_epoch} of an epoch of "
                            f"{saved_steps} steps, but an epoch now has {steps_per_epoch}; resume with the run's "
                            "--batch_size and data, or from a checkpoint saved at the end of an epoch")
        if meta.get("amp_level") == self.amp_level and meta.get("loss_scale"):
            self.loss_scale = float(meta["loss_scale"])
        if state.best_top1 is not None and not self._best_on_lineage(meta):
            print(f"{BEST_NAME} holds a model of a branch that this resume abandons; the next evaluation "
                  f"rewrites it", flush=True)
            state.best_top1 = None
        self.last, self.resumed_meta, self.parent_index = path, meta, _index(meta)
        return state, {name: value for name, value in rest.items() if name.startswith((MOMENT_PREFIX, EMA_PREFIX))}

    def _best_on_lineage(self, resumed: dict[str, Any]) -> bool:
        """Whether `best.ckpt` is the best model of the resumed checkpoint's history (its accuracy is the
        one the resumed sidecar records, saved no later, on its parent chain)."""
        try:
            best = read_sidecar(os.path.join(self.folder, BEST_NAME))
        except CorruptCheckpoint:
            return False
        if best is None or best.get("top1") != resumed.get("best_top1") or \
                not isinstance(best.get("global_step"), int) or best["global_step"] > resumed["global_step"]:
            return False
        parent, chain = best.get("parent_index"), lineage_indices(self.folder, resumed)
        present = {_index(m) for m in _sidecars(self.folder).values()}
        # an ancestor older than the chain's oldest present save was pruned; an abandoned save is still here
        return parent is None or parent in chain or (parent not in present and parent < min(chain, default=0))

    @staticmethod
    def restore_moments(optimizer: nn.Optimizer, moments: dict[str, np.ndarray], path: str) -> None:
        expected = {m.name: m for m in optimizer.moments}
        missing = [name for name in expected if name not in moments]
        if missing:
            raise UserError(f"--resume {path} has no optimizer state for {missing[0]} (and {len(missing) - 1} "
                            "more); use --pre_trained to start from its weights")
        assign_parameters(expected, {name: moments[name] for name in expected})


def find_resume_checkpoint(folder: str) -> tuple[str, dict[str, Any]] | None:
    """The newest checkpoint of a training run in `folder` that passes verification.

    Newest means the latest save (`save_order`: the save index, then the global step) recorded in the
    sidecar, never parsed from the file name: after a resume from an older checkpoint, the new branch's
    saves are newer than the abandoned ones. Corrupt candidates are skipped with a warning that names them.
    """
    if not os.path.isdir(folder):
        return None
    candidates = []
    for path in list_checkpoints(folder):
        try:
            meta = verify_checkpoint(path)
        except UserError as err:
            print(f"warning: skipping {path}: {err}", file=sys.stderr, flush=True)
            continue
        if meta is not None and meta.get("resumable") and isinstance(meta.get("global_step"), int):
            candidates.append((save_order(meta), path, meta))
    if not candidates:
        return None
    _, path, meta = max(candidates, key=lambda item: item[0])
    return path, meta


def _index(meta: dict[str, Any] | None) -> int | None:
    index = (meta or {}).get("save_index")
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def save_order(meta: dict[str, Any]) -> tuple:
    """Sort key of training checkpoints, oldest save first (sidecars without a save index come first)."""
    index = _index(meta)
    return (index is not None, index or 0, meta["global_step"], meta.get("epoch", 0), meta.get("step_in_epoch", 0))


def _sidecars(folder: str) -> dict[str, dict[str, Any]]:
    """The readable sidecars of the checkpoints in `folder` (unverified: for indices and parents only)."""
    found = {}
    for path in list_checkpoints(folder):
        try:
            meta = read_sidecar(path)
        except CorruptCheckpoint:
            continue
        if meta is not None:
            found[path] = meta
    return found


def lineage_indices(folder: str, newest: dict[str, Any]) -> set[int]:
    """The save indices of `newest` and of its ancestors still in `folder` (by their sidecars)."""
    parents = {_index(m): m.get("parent_index") for m in _sidecars(folder).values()
               if m.get("resumable") and _index(m) is not None}
    chain, index = set(), _index(newest)
    parents.setdefault(index, newest.get("parent_index"))
    while index is not None and index not in chain:
        chain.add(index)
        index = parents.get(index)
    return chain


def remove_unfinished_saves(folder: str) -> list[str]:
    """Delete the temporary files of saves that were killed before their rename; return their names.

    Only call this from the one process that writes checkpoints into `folder`.
    """
    if not os.path.isdir(folder):
        return []
    names = [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX) or n.endswith(SIDECAR_SUFFIX + ".tmp")]
    for name in names:
        remove_if_present(os.path.join(folder, name))
    return names


def remove_checkpoint(path: str) -> None:
    """Delete a checkpoint and its sidecar (the checkpoint first, so no orphan is ever trusted)."""
    for name in (path, sidecar_path(path)):
        remove_if_present(name)
