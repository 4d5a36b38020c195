"""CIFAR-10 binary data: both layouts, every validation error, the pipeline, sharding and seeds."""
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers.cifar_data import synthetic_images, write_cifar_layout
from src.data.cifar10_files import (EVAL_DIR, RECORD_BYTES, TRAIN_DIR, read_cifar10_bin, resolve_split_files,
                                    write_cifar10_bin)
from src.data.pipeline import create_dataset, default_workers, shard_indices
from src.utils.errors import UserError
from tests.helpers import REPO_ROOT



@pytest.fixture(scope="module")
def official(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("official")), per_train_file=6, test_count=13)


def test_official_layout_given_as_folder_or_parent(official):
    for data_path in (official, os.path.dirname(official)):
        train = resolve_split_files(data_path, "train")
        assert [os.path.basename(p) for p in train] == [f"data_batch_{i}.bin" for i in range(1, 6)]
        assert resolve_split_files(data_path, "eval") == [os.path.join(official, "test_batch.bin")]


def test_modelzoo_layout(tmp_path):
    root = write_cifar_layout(str(tmp_path), per_train_file=2, test_count=3, layout="modelzoo")
    assert os.path.dirname(resolve_split_files(root, "train")[0]) == os.path.join(root, TRAIN_DIR)
    assert resolve_split_files(root, "eval") == [os.path.join(root, EVAL_DIR, "test_batch.bin")]
    # The seed's habit: --data_path points at the train folder, the verify folder sits next to it.
    assert resolve_split_files(os.path.join(root, TRAIN_DIR), "eval") == [os.path.join(root, EVAL_DIR,
                                                                                          "test_batch.bin")]


def test_round_trip_keeps_pixels_and_labels(tmp_path):
    images, labels = synthetic_images(7, seed=3)
    path = str(tmp_path / "x.bin")
    write_cifar10_bin(path, images, labels)
    assert os.path.getsize(path) == 7 * RECORD_BYTES
    again, again_labels = read_cifar10_bin([path])
    np.testing.assert_array_equal(again, images)
    np.testing.assert_array_equal(again_labels, labels)


@pytest.mark.parametrize("damage, match", [
    ("missing_folder", "does not exist"),
    ("missing_file", "is missing data_batch_3.bin"),
    ("truncated", "not a whole number of 3073-byte records"),
    ("empty", "has 0 bytes"),
    ("bad_label", "has label 12, above 9"),
])
def test_every_validation_error_names_the_file(tmp_path, damage, match):
    folder = write_cifar_layout(str(tmp_path), per_train_file=2, test_count=2)
    target = os.path.join(folder, "data_batch_3.bin")
    if damage == "missing_folder":
        folder = str(tmp_path / "nowhere")
    elif damage == "missing_file":
        os.remove(target)
    elif damage == "truncated":
        with open(target, "ab") as handle:
            handle.write(b"\0" * 100)
    elif damage == "empty":
        open(target, "wb").close()
    else:
        raw = bytearray(open(target, "rb").read())
        raw[RECORD_BYTES] = 12  # the second record's label
        open(target, "wb").write(bytes(raw))
    with pytest.raises(UserError, match=match) as info:
        read_cifar10_bin(resolve_split_files(folder, "train"))
    message = str(info.value)
    assert "\n" not in message and "expected the CIFAR-10 binary version" in message
    if damage != "missing_folder":
        assert "data_batch_3.bin" in message


@pytest.mark.slow
def test_validation_error_is_one_line_and_exit_1_from_train_py(tmp_path):
    folder = write_cifar_layout(str(tmp_path), per_train_file=2, test_count=2)
    os.remove(os.path.join(folder, "data_batch_5.bin"))
    proc = subprocess.run([sys.executable, "train.py", "--device_target", "CPU", "--data_path", folder],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: {folder} is missing data_batch_5.bin for the train split; expected the CIFAR-10 binary "
        "version: a cifar-10-batches-bin folder with data_batch_1..5.bin and test_batch.bin, or "
        "DATA/cifar-10-batches-bin + DATA/cifar-10-verify-bin (see README \"Dataset\")"]


def _collect(dataset):
    images, labels = [], []
    for image, label in dataset.create_tuple_iterator(num_epochs=1, output_numpy=True):
        images.append(image)
        labels.append(label)
    return np.concatenate(images), np.concatenate(labels)


def test_eval_keeps_every_image_in_file_order_without_augmentation(official):
    images, labels = _collect(create_dataset(official, "eval", batch_size=4, image_size=32))
    assert images.shape == (13, 3, 32, 32) and images.dtype == np.float32 and labels.dtype == np.int32
    raw_images, raw_labels = read_cifar10_bin(resolve_split_files(official, "eval"))
    np.testing.assert_array_equal(labels, raw_labels)
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2023, 0.1994, 0.2010])
    expected = ((raw_images / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(images, expected, atol=1e-5)


def test_train_resizes_and_drops_the_remainder(official):
    dataset = create_dataset(official, "train", batch_size=4, image_size=48, seed=5)
    assert dataset.get_dataset_size() == 30 // 4
    images, _ = _collect(dataset)
    assert images.shape == (28, 3, 48, 48)


def test_same_seed_same_order_other_seed_other_order(official):
    def labels(seed):
        return _collect(create_dataset(official, "train", batch_size=5, image_size=32, seed=seed))[1]
    first = labels(7)
    np.testing.assert_array_equal(first, labels(7))
    assert any(not np.array_equal(first, labels(seed)) for seed in (8, 9))


@pytest.mark.parametrize("split, ranks", [("eval", 3), ("train", 4)])
def test_shards_are_disjoint_and_cover_the_set(official, split, ranks):
    """13 eval records on 3 ranks: 5/4/4, all kept. 30 train records on 4 ranks: 7 each, 2 left out."""
    def keys(rank_id=0, rank_size=1):
        images, _ = _collect(create_dataset(official, split, batch_size=1, image_size=32, shuffle=False,
                                            augment=False, rank_id=rank_id, rank_size=rank_size))
        return [image.tobytes() for image in images]
    everything = keys()
    covered = len(everything) - (len(everything) % ranks if split == "train" else 0)
    assert len(set(everything)) == len(everything)
    shards = [keys(rank, ranks) for rank in range(ranks)]
    assert all(len(set(shard)) == len(shard) for shard in shards)
    assert all(not (set(a) & set(b)) for i, a in enumerate(shards) for b in shards[i + 1:])
    assert set().union(*map(set, shards)) == set(everything[:covered])
    if split == "train":
        assert {len(shard) for shard in shards} == {covered // ranks}


def test_worker_count_fits_the_machine():
    assert default_workers(3) == 3
    assert 1 <= default_workers(0) <= min(4, os.cpu_count() or 1)


@pytest.mark.parametrize("count, rank_size, equal, expected", [
    (10, 3, True, [[0, 3, 6], [1, 4, 7], [2, 5, 8]]),          # training: record 9 left out, equal shards
    (10, 3, False, [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]),      # eval: every record kept
    (8, 2, True, [[0, 2, 4, 6], [1, 3, 5, 7]]),
    (5, 1, True, [[0, 1, 2, 3, 4]]),
])
def test_shard_of_rank_r_of_n(count, rank_size, equal, expected):
    assert [shard_indices(count, rank, rank_size, equal).tolist() for rank in range(rank_size)] == expected
