"""Pruning a run's folder of checkpoints (by the global step in each sidecar, never by file name)."""
import json
import os

import pytest

from src.training.checkpoint_manager import CheckpointManager
from src.utils.config import load_config

# (file name, global step): the natural order of the names is not the order of the steps.
RUN = [("sknet_tiny-1_10.ckpt", 10), ("sknet_tiny-2_4.ckpt", 14), ("sknet_tiny-2_10.ckpt", 20),
       ("sknet_tiny-3_10.ckpt", 30), ("sknet_tiny-10_10.ckpt", 100), ("sknet_tiny-4_10.ckpt", 40)]


def _write(folder, name, **sidecar):
    path = os.path.join(folder, name)
    with open(path, "wb") as handle:
        handle.write(b"weights")
    with open(path + ".json", "w", encoding="utf-8") as handle:
        json.dump({"size": 7, "sha256": "x", **sidecar}, handle)


@pytest.fixture
def folder(tmp_path):
    for name, step in RUN:
        _write(str(tmp_path), name, resumable=True, global_step=step, epoch=step // 10)
    _write(str(tmp_path), "best.ckpt", resumable=False, global_step=10, top1=0.9)
    _write(str(tmp_path), "pretrained.ckpt", resumable=False)
    return tmp_path


def _prune(folder, keep):
    CheckpointManager(load_config(["--keep_checkpoint_max", str(keep)]), str(folder), "O0").prune()
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("keep", [1, 2, 4])
def test_prune_keeps_the_k_newest_by_global_step(folder, keep):
    newest = [name for name, _ in sorted(RUN, key=lambda item: item[1])[-keep:]]
    others = ["best.ckpt", "pretrained.ckpt"]
    expected = sorted(name + suffix for name in newest + others for suffix in ("", ".json"))
    assert _prune(folder, keep) == expected


@pytest.mark.parametrize("keep", [0, len(RUN), len(RUN) + 3])
def test_prune_keeps_everything_when_off_or_not_full(folder, keep):
    before = sorted(os.listdir(folder))
    assert _prune(folder, keep) == before
