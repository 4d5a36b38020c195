"""Fuzz the user-facing readers: every input either loads or is a one-line `UserError`."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from src.utils.config import load_config
from src.data.cifar10_files import RECORD_BYTES, read_cifar10_bin
from src.utils.errors import UserError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = ["epoch_size", "batch_size", "lr_max", "shuffle", "arch", "data_path", "resume", "nonexistent_key"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=20), st.lists(st.integers(), max_size=3),
                    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def check_one_line(err: UserError) -> None:
    assert str(err) and "\n" not in str(err)


@FUZZ
@given(content=st.binary(max_size=400))
def test_config_loader_on_random_bytes(tmp_path, content):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(content)
    try:
        load_config(["--config_path", str(path)])
    except UserError as err:
        check_one_line(err)


@FUZZ
@given(mapping=st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=4))
def test_config_loader_on_random_values(tmp_path, mapping):
    import yaml
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(mapping))
    try:
        cfg = load_config(["--config_path", str(path)])
    except UserError as err:
        check_one_line(err)
        return
    assert isinstance(cfg.epoch_size, int) and isinstance(cfg.shuffle, bool)
    assert np.isfinite(cfg.lr_max)


@FUZZ
@given(key=st.sampled_from(KEYS[:-1]), value=st.text(max_size=30))
def test_config_flags_on_random_text(key, value):
    try:
        load_config([f"--{key}", value])
    except UserError as err:
        check_one_line(err)


@FUZZ
@given(content=st.binary(max_size=3 * RECORD_BYTES + 10), records=st.integers(0, 3), cut=st.integers(0, 50))
def test_cifar_reader_on_random_and_truncated_files(tmp_path, content, records, cut):
    rng = np.random.default_rng(len(content))
    valid = rng.integers(0, 256, size=records * RECORD_BYTES, dtype=np.uint8).tobytes()
    for data in (content, valid[: max(0, len(valid) - cut)]):
        path = tmp_path / "data_batch_1.bin"
        path.write_bytes(data)
        try:
            images, labels = read_cifar10_bin([str(path)])
        except UserError as err:
            check_one_line(err)
            assert os.fspath(path) in str(err)
            continue
        assert len(data) % RECORD_BYTES == 0 and len(data) > 0
        assert images.shape == (len(data) // RECORD_BYTES, 32, 32, 3) and labels.max() <= 9


@pytest.mark.parametrize("label", [10, 255])
def test_cifar_reader_names_the_record_with_a_bad_label(tmp_path, label):
    records = np.zeros((3, RECORD_BYTES), np.uint8)
    records[2, 0] = label
    path = tmp_path / "test_batch.bin"
    records.tofile(path)
    with pytest.raises(UserError, match=f"record 2 has label {label}"):
        read_cifar10_bin([str(path)])
