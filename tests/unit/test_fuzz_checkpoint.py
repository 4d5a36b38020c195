"""Fuzz the checkpoint loader: random bytes, truncated and bit-flipped checkpoints, with and without
their sidecar. Every case is a one-line `UserError` or a faithful load, never a crash, a hang or a
damaged file loaded silently."""
import json
import os

import mindspore as ms
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from src.utils.checkpoint_file import CorruptCheckpoint, load_checkpoint_file, save_checkpoint_atomic, sidecar_path
from src.utils.errors import UserError
from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.processes import run_entry

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
VALUES = {"conv.weight": np.arange(96, dtype=np.float32).reshape(2, 3, 4, 4) / 7,
          "fc.bias": np.linspace(-1, 1, 10).astype(np.float32)}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[bytes, str]:
    """A small checkpoint written by the project's own save, and its sidecar text."""
    path = str(tmp_path_factory.mktemp("good") / "good.ckpt")
    save_checkpoint_atomic([{"name": name, "data": ms.Tensor(value)} for name, value in VALUES.items()], path,
                           metadata={"epoch": 1})
    with open(path, "rb") as handle, open(sidecar_path(path), encoding="utf-8") as side:
        return handle.read(), side.read()


def write_case(folder, content: bytes, sidecar: str | None) -> str:
    path = os.path.join(folder, "case.ckpt")
    if os.path.exists(path):
        os.chmod(path, 0o600)
    with open(path, "wb") as handle:
        handle.write(content)
    if sidecar is None:
        if os.path.exists(sidecar_path(path)):
            os.remove(sidecar_path(path))
    else:
        with open(sidecar_path(path), "w", encoding="utf-8") as handle:
            handle.write(sidecar)
    return path


def load_or_error(path: str) -> dict[str, np.ndarray] | None:
    """The loaded arrays, or None after checking that the error is one line naming the file."""
    try:
        params, _ = load_checkpoint_file(path)
    except UserError as err:
        assert str(err) and "\n" not in str(err) and path in str(err), str(err)
        return None
    return params


def damage(content: bytes, position: int, mask: int, cut: int, mode: str) -> bytes:
    if mode == "truncate":
        return content[: cut % len(content)]
    blob = bytearray(content)
    blob[position % len(blob)] ^= mask
    return bytes(blob)


@FUZZ
@given(content=st.binary(max_size=600), with_sidecar=st.booleans())
def test_random_bytes_are_an_error_or_a_plain_load(tmp_path, good, content, with_sidecar):
    sidecar = json.dumps({"size": len(content) + 1, "sha256": "0" * 64}) if with_sidecar else None
    params = load_or_error(write_case(tmp_path, content, sidecar))
    # With a sidecar the size differs; without one, random bytes lack MindSpore's CRC trailer (and an
    # empty parse holds no parameters). Either way nothing loads.
    assert params is None, sorted(params)


@FUZZ
@given(position=st.integers(0, 10 ** 6), mask=st.integers(1, 255), cut=st.integers(0, 10 ** 6),
       mode=st.sampled_from(["flip", "truncate"]), with_sidecar=st.booleans())
def test_damaged_checkpoints_are_never_loaded_as_if_intact(tmp_path, good, position, mask, cut, mode, with_sidecar):
    content, sidecar = good
    params = load_or_error(write_case(tmp_path, damage(content, position, mask, cut, mode),
                                      sidecar if with_sidecar else None))
    if with_sidecar:
        assert params is None, "the sidecar's size and sha256 must catch every change"
    elif params is not None:
        # Without a sidecar, MindSpore's CRC (flips) or the protobuf framing (truncation) catches most
        # damage; what still loads must hold exactly the original values (e.g. only the CRC trailer cut).
        for name, value in params.items():
            if name in VALUES:
                np.testing.assert_array_equal(value, VALUES[name])


@FUZZ
@given(offset=st.integers(0, 10 ** 6), mask=st.integers(1, 255))
def test_a_flipped_byte_in_a_checkpoint_without_sidecar_is_caught_by_its_crc(tmp_path, good, offset, mask):
    content, _ = good
    # Anywhere before the 17-byte CRC trailer that MindSpore appends with crc_check=True.
    assert content[-17:-10] == b"crc_num"
    path = write_case(tmp_path, damage(content, offset % (len(content) - 17), mask, 0, "flip"), None)
    with pytest.raises(CorruptCheckpoint):
        load_checkpoint_file(path)


@pytest.mark.slow
def test_eval_on_a_garbage_checkpoint_exits_1_with_one_line(tmp_path):
    data = write_cifar_layout(str(tmp_path / "data"), per_train_file=2, test_count=4)
    path = tmp_path / "garbage.ckpt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    result = run_entry("eval.py", ["--device_target", "CPU", "--arch", "sknet_tiny", "--stem_type", "cifar",
                                   "--image_size", "32", "--data_path", data, "--checkpoint_path", str(path)])
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: checkpoint {path}") and "Traceback" not in result.stderr, result.stderr
