"""Checkpoint I/O that never leaves a half-written file under a final name."""
import os
import tempfile
from typing import Any

import mindspore as ms


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
