"""Checkpoint files that are never trusted blindly.

Each checkpoint `X.ckpt` is written to a temporary name in the same folder, fsynced and then
renamed, so a crash never leaves a half-written file under a final name. Before the rename, a
sidecar `X.ckpt.json` records the file's size and sha256 plus the training state (epoch, global
step, loss scale, accuracy...). Loading checks the file against its sidecar, so a truncated or
corrupted checkpoint is an error that names the file, never a silent partial load.

Loading into a network is strict: every parameter of the network must be in the file with the
same shape (only the classifier may be skipped, and only when asked). Optimizer state and
bookkeeping entries in the file are allowed; any other extra entry means the file belongs to a
different network and is an error.
"""
import hashlib
import json
import logging
import os
import re
from typing import Any

import mindspore as ms
import numpy as np

from src.utils.atomic_file import TEMP_PREFIX, atomic_path, fsync_file, remove_if_present, write_json_atomic
from src.utils.errors import UserError

SIDECAR_SUFFIX = ".json"
MOMENT_PREFIX = "moments."
EMA_PREFIX = "ema."  # the weight averages of a run trained with --ema_decay (src/training/ema.py)
CLASSIFIER = ("fc.weight", "fc.bias")
# Entries that MindSpore's own training wrappers and `append_dict` put into checkpoints.
_BOOKKEEPING = re.compile(r"^(moments\.|ema\.|accum\.|learning_rate$|global_step$|momentum$|scale_sense$|"
                          r"loss_scale$|epoch_num$|step_num$|current_iterator_step$|last_overflow_iterator_step$)")


class CorruptCheckpoint(UserError):
    """A checkpoint that does not match its sidecar or that MindSpore cannot read."""


def sidecar_path(path: str) -> str:
    return path + SIDECAR_SUFFIX


def file_digest(path: str) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return os.path.getsize(path), digest.hexdigest()


def _write_with_mindspore(save_obj: Any, tmp: str, append_dict: dict | None) -> None:
    """`mindspore.save_checkpoint` into `tmp`, with a CRC inside the file (a copy without its sidecar
    is still checked). MindSpore logs a failed save at CRITICAL level naming the temporary file
    before it re-raises; the caller reports the final name instead, so that line is muted."""
    logging.disable(logging.CRITICAL)
    try:
        ms.save_checkpoint(save_obj, tmp, append_dict=append_dict, crc_check=True)
    finally:
        logging.disable(logging.NOTSET)
        # MindSpore itself first writes NAME.tmp for NAME.ckpt and leaves it behind when it fails.
        remove_if_present(os.path.splitext(tmp)[0] + ".tmp")


def save_checkpoint_atomic(save_obj: Any, path: str, append_dict: dict | None = None,
                           metadata: dict[str, Any] | None = None) -> None:
    """Write a checkpoint and its sidecar without ever exposing a partial or unverifiable file.

    Args:
        save_obj: a Cell, or a list of {"name", "data"} dicts, as for `mindspore.save_checkpoint`.
        path: the final `.ckpt` path.
        append_dict: extra scalars stored inside the checkpoint (as MindSpore does).
        metadata: extra JSON-serialisable facts for the sidecar (epoch, step, accuracy...).

    The sidecar is renamed into place before the checkpoint. When `path` already holds a verified
    checkpoint (`best.ckpt` is rewritten in place), the new sidecar also keeps the old file's record
    under `previous`, so a kill between the two renames leaves the old file verifiable; once the
    checkpoint is in place, the sidecar is rewritten without it.
    """
    previous = _current_record(path)
    with atomic_path(path, suffix=".ckpt") as tmp:
        _write_with_mindspore(save_obj, tmp, append_dict)
        fsync_file(tmp)
        size, sha256 = file_digest(tmp)
        record = {**(metadata or {}), "file": os.path.basename(path), "size": size, "sha256": sha256}
        write_json_atomic(sidecar_path(path), {**record, "previous": previous} if previous else record)
    if previous:
        write_json_atomic(sidecar_path(path), record)


def _current_record(path: str) -> dict[str, Any] | None:
    """The sidecar of the checkpoint now at `path` if the file matches it, else None."""
    try:
        return _matching_record(path, read_sidecar(path)) if os.path.isfile(path) else None
    except CorruptCheckpoint:
        return None


def read_sidecar(path: str) -> dict[str, Any] | None:
    """The sidecar of `path`, or None when there is none (a file from elsewhere)."""
    side = sidecar_path(path)
    if not os.path.exists(side):
        return None
    try:
        with open(side, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict) or not isinstance(data.get("size"), int):
            raise ValueError("no size field")
    except (OSError, ValueError) as err:
        raise CorruptCheckpoint(f"{side} (the integrity record of {path}) is unreadable: {err}; "
                                "delete both files or pick another checkpoint") from err
    return data


def _matching_record(path: str, meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """The record of `meta` (or of its `previous`, a save killed between its two renames) that the file
    at `path` matches; `CorruptCheckpoint` when neither does."""
    if meta is None:
        return None
    size, sha256 = file_digest(path)
    previous = meta.pop("previous", None)
    for record in (meta, previous if isinstance(previous, dict) else {}):
        if size == record.get("size") and sha256 == record.get("sha256"):
            return record
    raise CorruptCheckpoint(f"checkpoint {path} is corrupt or truncated ({size} bytes, expected "
                            f"{meta['size']}; sha256 {'differs' if size == meta['size'] else 'not checked'}); "
                            "use an earlier checkpoint")


def verify_checkpoint(path: str) -> dict[str, Any] | None:
    """Check `path` exists and matches its sidecar; return the sidecar (None if it has none)."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist; pass an existing .ckpt file")
    return _matching_record(path, read_sidecar(path))


def load_checkpoint_file(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
    """Verify and read a checkpoint: (name -> numpy array, sidecar or None)."""
    meta = verify_checkpoint(path)
    try:
        params = ms.load_checkpoint(path, crc_check=True)
    except (RuntimeError, ValueError, TypeError, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CorruptCheckpoint(f"checkpoint {path} cannot be read by MindSpore ({first_line}); "
                                "is it a complete MindSpore .ckpt?") from err
    if not params:
        raise CorruptCheckpoint(f"checkpoint {path} holds no parameters")
    return {name: value.asnumpy() for name, value in params.items()}, meta


def match_network(net, params: dict[str, np.ndarray], source: str,
                  skip_classifier_on_mismatch: bool = False) -> tuple[dict[str, np.ndarray], list[str]]:
    """Select the entries of `params` that initialise `net`, refusing any mismatch.

    Returns (parameter name -> array, skipped classifier names). Raises `UserError` when a
    network parameter is missing or has another shape, or when the file holds parameters that
    the network does not have (another architecture). With `skip_classifier_on_mismatch`, a
    classifier of another class count is skipped instead (fine-tuning).
    """
    expected = {p.name: tuple(p.shape) for p in net.get_parameters()}
    skipped: list[str] = []
    if skip_classifier_on_mismatch and "fc.weight" in params and \
            tuple(params["fc.weight"].shape) != expected.get("fc.weight"):
        skipped = [name for name in CLASSIFIER if name in params]
    missing = [n for n in expected if n not in params and n not in skipped]
    if missing:
        raise UserError(f"{source} does not fit the network: {len(missing)} parameters are missing "
                        f"(first: {missing[0]}); check --arch, --stem_type and --class_num")
    for name, shape in expected.items():
        if name not in skipped and tuple(params[name].shape) != shape:
            hint = ("; use --pre_trained to fine-tune on another class count" if name in CLASSIFIER else
                    "; check --arch, --stem_type and --class_num")
            raise UserError(f"{source} does not fit the network: {name} has shape {tuple(params[name].shape)} "
                            f"in the file, {shape} in the network{hint}")
    foreign = [n for n in params if n not in expected and n not in skipped and not _BOOKKEEPING.match(n)]
    if foreign:
        raise UserError(f"{source} holds {len(foreign)} parameters the network does not have "
                        f"(first: {foreign[0]}); check --arch and --stem_type")
    return {name: params[name] for name in expected if name not in skipped}, skipped


def assign_parameters(params_by_name: dict[str, Any], values: dict[str, np.ndarray]) -> None:
    """Copy arrays into parameters (name -> Parameter), keeping each parameter's dtype."""
    for name, value in values.items():
        param = params_by_name[name]
        param.set_data(ms.Tensor(value.reshape(param.shape), dtype=param.dtype))


def ema_weights(params: dict[str, np.ndarray], meta: dict[str, Any] | None, source: str) -> dict[str, np.ndarray]:
    """The EMA weights of a checkpoint: its `ema.*` entries (a training checkpoint), or all of it when
    it was saved from the EMA (`best.ckpt` of a run with --ema_decay)."""
    averages = {name[len(EMA_PREFIX):]: value for name, value in params.items() if name.startswith(EMA_PREFIX)}
    if averages:
        return averages
    if meta and meta.get("weights") == "ema":
        return params
    raise UserError(f"{source} holds no EMA weights (trained without --ema_decay); drop --use_ema to use its "
                    "trained weights")


def weights_kind(meta: dict[str, Any] | None, use_ema: bool) -> str:
    """"EMA" or "trained": which weights a load with `use_ema` took from a checkpoint with sidecar `meta`."""
    return "EMA" if use_ema or (meta and meta.get("weights") == "ema") else "trained"


def load_weights(net, path: str, source: str | None = None, skip_classifier_on_mismatch: bool = False,
                 use_ema: bool = False) -> tuple[dict[str, Any] | None, list[str], dict[str, np.ndarray]]:
    """Verify the checkpoint at `path`, check that it fits `net`, and copy its weights into `net`.

    Returns (its sidecar or None, the classifier names skipped, the file's other entries such as
    optimizer moments). Nothing is copied unless everything fits (see `match_network`). With
    `use_ema`, the EMA weights are copied instead (see `ema_weights`).
    """
    params, meta = load_checkpoint_file(path)
    if use_ema:
        params = ema_weights(params, meta, source or path)
    values, skipped = match_network(net, params, source or path, skip_classifier_on_mismatch)
    assign_parameters({p.name: p for p in net.get_parameters()}, values)
    return meta, skipped, {name: value for name, value in params.items() if name not in values}


def natural_key(name: str) -> list:
    """Sort key so that epoch 2 comes before epoch 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_checkpoints(folder: str) -> list[str]:
    """The `.ckpt` files directly in `folder`, in natural order (temporary files excluded)."""
    names = [n for n in os.listdir(folder) if n.endswith(".ckpt") and not n.startswith(TEMP_PREFIX)]
    return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]
