"""The files around a run survive faults: a damaged old sidecar, a failed metrics.csv write, bad output paths."""
import errno
import json
import os

import mindspore as ms
import numpy as np
import pytest

import postprocess
import preprocess
from src.evaluation.eval_checkpoints import evaluate_checkpoints
from src.training.checkpoint_manager import CheckpointManager
from src.training.train_log import MetricsCSV
from src.utils.checkpoint_file import list_checkpoints, save_checkpoint_atomic, sidecar_path
from src.utils.config import load_config
from src.utils.atomic_file import write_json_atomic
from src.utils.errors import UserError
from tests.helpers.cifar_data import write_cifar_layout


def _save(path: str, step: int) -> None:
    entries = [{"name": "w", "data": ms.Tensor(np.full(3, step, np.float32))}]
    save_checkpoint_atomic(entries, path, metadata={"global_step": step, "epoch": step, "resumable": True})


def test_a_damaged_sidecar_of_an_old_checkpoint_does_not_stop_pruning(tmp_path, capsys):
    for step in (1, 2, 3, 4):
        _save(str(tmp_path / f"net-{step}_1.ckpt"), step)
    damaged = str(tmp_path / "net-1_1.ckpt")
    with open(sidecar_path(damaged), "w", encoding="utf-8") as handle:
        handle.write("{not json")
    manager = CheckpointManager(load_config(["--keep_checkpoint_max", "2"]), str(tmp_path), "O0")
    manager.prune()
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path))] == ["net-1_1.ckpt", "net-3_1.ckpt",
                                                                              "net-4_1.ckpt"]
    assert f"warning: not pruning {damaged}" in capsys.readouterr().err


def _disk_full_writes(folder, budget: int):
    """`os.write` whose writes to files in `folder` fail with ENOSPC once `budget` bytes were written."""
    real_write, left = os.write, [budget]

    def limited(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder)):
            left[0] -= len(data)
            if left[0] < 0:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)
    return limited


def test_a_failed_metrics_rewrite_on_resume_keeps_every_row_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = str(tmp_path / "metrics.csv")
    metrics = MetricsCSV(path)
    for epoch in (1, 2, 3):
        metrics.append(epoch=epoch, step=10 * epoch, loss="2.0", lr="0.1", top1=None, top5=None, seconds="1.0")
    before = open(path, encoding="utf-8").read()
    monkeypatch.setattr(os, "write", _disk_full_writes(tmp_path, budget=30))
    with pytest.raises(OSError):
        MetricsCSV(path, resumed_epoch=2)
    monkeypatch.undo()
    assert open(path, encoding="utf-8").read() == before
    assert os.listdir(tmp_path) == ["metrics.csv"]
    MetricsCSV(path, resumed_epoch=2)
    assert [line.split(",")[0] for line in open(path, encoding="utf-8").read().splitlines()] == ["epoch", "1", "2"]


def test_eval_refuses_a_result_json_that_is_a_folder_before_evaluating(tmp_path):
    cfg = load_config(["--checkpoint_path", str(tmp_path / "missing.ckpt"), "--result_json", str(tmp_path)])
    with pytest.raises(UserError, match=f"--result_json {tmp_path} is a folder; pass a file path"):
        evaluate_checkpoints(cfg, None)


def test_preprocess_refuses_an_output_path_that_is_a_file(tmp_path):
    data = write_cifar_layout(str(tmp_path / "data"), per_train_file=1, test_count=2)
    (tmp_path / "out").write_text("a file")
    with pytest.raises(UserError, match="--output_path: .*out is a file, not a folder"):
        preprocess.main(["--data_path", data, "--output_path", str(tmp_path / "out"), "--image_size", "32"])


@pytest.mark.parametrize("meta, match", [
    ({"batch_size": 4, "image_count": 2, "class_names": ["a", "b"], "files": None}, "files is None, not a list"),
    ({"batch_size": 0, "image_count": 2, "class_names": ["a"], "files": []}, "batch_size is 0, not a positive"),
    ({"batch_size": 4, "image_count": 2, "class_names": ["a"], "files": [3]}, r"files is \[3\], not a list of names"),
    ([1, 2], "must hold a JSON object, not list"),
])
def test_postprocess_names_a_bad_meta_json(tmp_path, meta, match):
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "result").mkdir()
    with pytest.raises(UserError, match=match):
        postprocess.main(["--result_path", str(tmp_path / "result"), "--label_path", str(tmp_path / "labels.npy")])


@pytest.fixture
def durability_log(monkeypatch):
    """The fsyncs (of which path) and renames (to which path) of the test, in order."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, *args, **kwargs):
        events.append(("replace", os.path.abspath(dst)))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def assert_durable(events: list, path: str) -> None:
    """`path` was renamed into place after its content was fsynced, and its folder was fsynced after that."""
    renamed = events.index(("replace", path))
    assert any(kind == "fsync" and os.path.dirname(target) == os.path.dirname(path)
               and os.path.basename(target).startswith(".tmp-") for kind, target in events[:renamed]), events
    assert ("fsync", os.path.dirname(path)) in events[renamed + 1:], f"the folder is not fsynced after {path}"


def test_every_atomic_write_fsyncs_the_file_then_renames_then_fsyncs_the_folder(tmp_path, durability_log):
    text = str(tmp_path / "a.json")
    write_json_atomic(text, {"a": 1})
    assert_durable(durability_log, text)
    checkpoint = str(tmp_path / "w.ckpt")
    _save(checkpoint, 3)
    assert_durable(durability_log, checkpoint)
    assert_durable(durability_log, os.path.abspath(sidecar_path(checkpoint)))
