"""Checkpoint files: atomic writes with an integrity sidecar, strict loading, resume discovery."""
import json
import os

import mindspore as ms
import numpy as np
import pytest

from src.training.checkpoint_manager import find_resume_checkpoint
from src.utils.checkpoint_file import (CorruptCheckpoint, list_checkpoints, load_checkpoint_file, match_network, natural_key,
                                       save_checkpoint_atomic, sidecar_path)
from src.utils.errors import UserError
from src.sknet50 import create_model


def _entries(values: dict[str, np.ndarray]):
    return [{"name": name, "data": ms.Tensor(value)} for name, value in values.items()]


def _save(path, step, resumable=True):
    save_checkpoint_atomic(_entries({"w": np.full(3, step, np.float32)}), str(path),
                           metadata={"global_step": step, "epoch": step, "resumable": resumable})


def test_save_writes_sidecar_and_loads_back(tmp_path):
    path = tmp_path / "a.ckpt"
    _save(path, 4)
    meta = json.loads(open(sidecar_path(str(path))).read())
    assert meta["size"] == os.path.getsize(path) and len(meta["sha256"]) == 64 and meta["global_step"] == 4
    params, loaded_meta = load_checkpoint_file(str(path))
    np.testing.assert_array_equal(params["w"], [4, 4, 4])
    assert loaded_meta["epoch"] == 4
    assert sorted(os.listdir(tmp_path)) == ["a.ckpt", "a.ckpt.json"]  # no temporary file left


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_checkpoint_is_detected(tmp_path, damage):
    path = tmp_path / "a.ckpt"
    _save(path, 1)
    raw = bytearray(path.read_bytes())
    os.chmod(path, 0o600)
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptCheckpoint, match="corrupt or truncated"):
        load_checkpoint_file(str(path))


def test_garbage_without_sidecar_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.ckpt"
    path.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(UserError, match="cannot be read by MindSpore"):
        load_checkpoint_file(str(path))


def test_resume_finds_newest_valid_and_skips_corrupt(tmp_path, capsys):
    for step in (10, 20, 30):
        _save(tmp_path / f"net-{step}.ckpt", step)
    _save(tmp_path / "best.ckpt", 25, resumable=False)
    newest = tmp_path / "net-30.ckpt"
    os.chmod(newest, 0o600)
    newest.write_bytes(newest.read_bytes()[:-10])
    path, meta = find_resume_checkpoint(str(tmp_path))
    assert os.path.basename(path) == "net-20.ckpt" and meta["global_step"] == 20
    assert "net-30.ckpt" in capsys.readouterr().err


def test_natural_order():
    names = ["s-10_5.ckpt", "s-2_5.ckpt", "s-1_5.ckpt"]
    assert sorted(names, key=natural_key) == ["s-1_5.ckpt", "s-2_5.ckpt", "s-10_5.ckpt"]


def test_list_checkpoints_skips_temporary_files(tmp_path):
    for name in ("b-10.ckpt", "b-9.ckpt", ".tmp-x.ckpt", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path))] == ["b-9.ckpt", "b-10.ckpt"]


@pytest.fixture(scope="module")
def tiny():
    return create_model("sknet_tiny", 10, stem_type="cifar")


def _state(net):
    return {p.name: p.asnumpy() for p in net.get_parameters()}


def test_match_network_accepts_optimizer_state(tiny):
    params = _state(tiny)
    params["moments.fc.weight"] = np.zeros((10, 256), np.float32)
    values, skipped = match_network(tiny, params, "x.ckpt")
    assert len(values) == len(params) - 1 and skipped == []


def test_match_network_refuses_missing_shape_and_foreign(tiny):
    params = _state(tiny)
    with pytest.raises(UserError, match="missing"):
        match_network(tiny, {k: v for k, v in params.items() if k != "stem.conv.weight"}, "x.ckpt")
    with pytest.raises(UserError, match=r"fc.weight has shape \(5, 256\)"):
        match_network(tiny, {**params, "fc.weight": np.zeros((5, 256), np.float32)}, "x.ckpt")
    with pytest.raises(UserError, match="parameters the network does not have"):
        match_network(tiny, {**params, "layer1.1.conv1.conv.weight": np.zeros(1, np.float32)}, "x.ckpt")


def test_classifier_of_other_class_count_is_skipped_only_when_asked(tiny):
    params = {**_state(tiny), "fc.weight": np.zeros((1000, 256), np.float32), "fc.bias": np.zeros(1000, np.float32)}
    values, skipped = match_network(tiny, params, "x.ckpt", skip_classifier_on_mismatch=True)
    assert skipped == ["fc.weight", "fc.bias"] and "fc.weight" not in values
    with pytest.raises(UserError):
        match_network(tiny, params, "x.ckpt")
