"""The settings a run folder, a checkpoint or a MINDIR carries, which eval.py, export.py and preprocess.py follow.

train.py leaves `config.yaml` (its resolved settings) in the run folder and a sidecar next to each
checkpoint with the network's settings (src/training/checkpoint_manager.py); a MINDIR holds its input
and output shapes. Those values replace the defaults, so `eval.py --checkpoint_path RUN` needs no
repeated flags. A key given explicitly (a flag or --config_path) must agree: a contradiction is a
one-line error naming both values. conv_impl and amp_level are never taken: they belong to the device.
"""
import os
from dataclasses import dataclass
from typing import Any

from src.utils.checkpoint_file import CorruptCheckpoint, list_checkpoints, read_sidecar
from src.utils.config import Config, read_yaml
from src.utils.config_rules import validate
from src.utils.errors import UserError

RUN_CONFIG = "config.yaml"
# The settings that define the trained network and its input, in the order they are printed.
NETWORK_KEYS = ("arch", "stem_type", "class_num", "image_size")


@dataclass
class RunSettings:
    """Settings read from `source` (a file), and whether the run has EMA weights (None: unknown).

    `of_a_run`: False for a MINDIR's shapes, which are facts of a built network, not settings to range-check
    against the config (its image size need not suit the configured stem).
    """
    values: dict[str, Any]
    source: str
    has_ema: bool | None = None
    of_a_run: bool = True


def _from_config_yaml(path: str) -> RunSettings:
    config = read_yaml(path)
    ema_decay = config.get("ema_decay")
    return RunSettings({key: config[key] for key in NETWORK_KEYS if key in config}, path,
                       None if ema_decay is None else bool(ema_decay))


def _from_sidecar(path: str) -> RunSettings | None:
    meta = read_sidecar(path)
    values = {key: meta[key] for key in NETWORK_KEYS if key in meta} if meta else {}
    return RunSettings(values, f"the sidecar of {path}") if values else None


def _from_mindir(path: str, keys: tuple[str, ...]) -> RunSettings:
    from src.utils.mindir import mindir_class_count, mindir_image_input  # loads MindSpore's MINDIR schema

    batch, image_size = mindir_image_input(path)
    values = {"image_size": image_size, "export_batch_size": batch}
    if (classes := mindir_class_count(path)) is not None:
        values["class_num"] = classes
    return RunSettings({key: value for key, value in values.items() if key in keys}, f"the shapes of {path}",
                       of_a_run=False)


def read_run_settings(path: str | None, keys: tuple[str, ...] = NETWORK_KEYS) -> RunSettings | None:
    """The settings that `path` carries, or None when it carries none (a file from elsewhere, a missing path).

    A run folder: its config.yaml, else the sidecar of its newest readable checkpoint. A .ckpt: its sidecar,
    else the config.yaml beside it. A .mindir: its image size, class count and (with "export_batch_size"
    in `keys`) its batch size.
    """
    if not path or not os.path.exists(path):
        return None
    if path.endswith(".mindir") and os.path.isfile(path):
        return _from_mindir(path, keys)
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    found = None
    if os.path.isfile(path):
        found = _from_sidecar(path)
    elif not os.path.isfile(os.path.join(folder, RUN_CONFIG)):
        for checkpoint in reversed(list_checkpoints(folder)):
            try:
                found = _from_sidecar(checkpoint)
            except CorruptCheckpoint:  # eval reports it with the checkpoint itself
                continue
            if found:
                break
    if found is None and os.path.isfile(os.path.join(folder, RUN_CONFIG)):
        found = _from_config_yaml(os.path.join(folder, RUN_CONFIG))
    if found is not None:
        found.values = {key: value for key, value in found.values.items() if key in keys}
    return found


def follow_run(cfg: Config, path: str | None, keys: tuple[str, ...] = NETWORK_KEYS) -> RunSettings | None:
    """Set `keys` of `cfg` from what `path` carries (see `read_run_settings`) and print one line saying so.

    A key given explicitly (a flag or --config_path: `cfg.given_by`) with another value is a `UserError` naming
    both values.
    """
    if path and not os.path.exists(path):
        raise UserError(f"{path} does not exist; pass a run folder, a checkpoint or a MINDIR that exists")
    settings = read_run_settings(path, keys)
    if settings is None:
        shown = ", ".join(f"{key} {getattr(cfg, key)}" for key in keys)
        why = f"; {path} carries no run settings" if path else ""
        print(f"settings: {shown} (from the defaults and flags{why})", flush=True)
        return None
    for key, value in settings.values.items():
        where, ours = cfg.given_by(key), getattr(cfg, key)
        if where and ours != value:
            given = f"{where} {ours}" if where.startswith("--") else f"{key} {ours} in {where}"
            raise UserError(f"{given} contradicts {settings.source}, which holds {key} {value}; drop it, or pass "
                            f"a run or file with {key} {ours}")
    try:
        if settings.of_a_run:
            validate({**cfg.to_dict(), **settings.values})
    except UserError as err:
        raise UserError(f"{settings.source} holds a setting this version refuses ({err})") from err
    if cfg.use_ema and settings.has_ema is False:
        raise UserError(f"--use_ema true, but the run of {settings.source} was trained without --ema_decay, so "
                        "its checkpoints hold no EMA weights; drop --use_ema")
    for key, value in settings.values.items():
        setattr(cfg, key, value)
    shown = ", ".join(f"{key} {value}" for key, value in settings.values.items())
    note = ""
    if settings.has_ema and not cfg.use_ema:
        note = "; the run also has EMA weights (--use_ema true)"
    print(f"settings: {shown} (from {settings.source}){note}", flush=True)
    return settings
