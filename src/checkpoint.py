"""Checkpoint I/O: never a half-written file under a final name, never a partial load."""
import os
import tempfile
from typing import Any

import mindspore as ms

from src.errors import UserError


def save_checkpoint_atomic(save_obj: Any, path: str, append_dict: dict | None = None) -> None:
    """Write a checkpoint to a temporary file in the same folder, fsync it, then rename it.

    `save_obj` is a Cell or a list of {"name", "data"} dicts, as for `mindspore.save_checkpoint`.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".ckpt", dir=folder)
    os.close(fd)
    try:
        ms.save_checkpoint(save_obj, tmp, append_dict=append_dict)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint_strict(net: Any, path: str, described_as: str) -> None:
    """Load every parameter of `net` from the checkpoint at `path`, or fail with a `UserError`.

    Never loads partially: each network parameter must be in the file with the same shape.
    Extra entries are accepted only when they are training state (optimizer slots named
    `<slot>.<parameter>`, or scalars such as `global_step`); any other extra entry means the
    file was written for another network.

    Args:
        net: the network (a `mindspore.nn.Cell`).
        path: a MindSpore `.ckpt` file.
        described_as: what `net` is, for the error message (e.g. "arch sknet_tiny, class_num 10,
            stem_type cifar").
    """
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist; pass an existing .ckpt file")
    try:
        saved = ms.load_checkpoint(path)
    except (RuntimeError, ValueError, OSError) as err:
        raise UserError(f"checkpoint {path} cannot be read ({str(err).splitlines()[0]}); "
                        "pass a MindSpore .ckpt file") from err
    expected = net.parameters_dict()
    hint = f"it does not fit {described_as}; pass the checkpoint of this network or fix the config"
    for name, param in expected.items():
        if name not in saved:
            raise UserError(f"checkpoint {path} has no parameter {name}; {hint}")
        if tuple(saved[name].shape) != tuple(param.shape):
            raise UserError(f"checkpoint {path} has {name} of shape {tuple(saved[name].shape)}, the network "
                            f"{tuple(param.shape)}; {hint}")
    for name, value in saved.items():
        is_training_state = name.split(".", 1)[-1] in expected or value.size <= 1
        if name not in expected and not is_training_state:
            raise UserError(f"checkpoint {path} has parameter {name}, which the network lacks; {hint}")
    not_loaded, _ = ms.load_param_into_net(net, {name: saved[name] for name in expected}, strict_load=True)
    if not_loaded:
        raise UserError(f"checkpoint {path}: parameters {not_loaded[:3]} were not loaded; {hint}")
