"""preprocess.py writes eval.py's inputs as padded batches; postprocess.py scores only the real images."""
import json
import os

import numpy as np
import pytest

import postprocess
import preprocess
from src.data.cifar10_files import CLASS_NAMES
from src.data.pipeline import create_dataset
from src.utils.errors import UserError
from tests.helpers.cifar_data import write_cifar_layout

IMAGES, BATCH = 10, 4  # 3 batches, the last one with 2 padded images


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    data = write_cifar_layout(str(root / "data"), per_train_file=1, test_count=IMAGES)
    out = str(root / "preprocess_Result")
    preprocess.main(["--data_path", data, "--output_path", out, "--batch_size", str(BATCH), "--image_size", "32"])
    return data, out


def test_batches_are_eval_inputs_padded_with_zeros(preprocessed):
    data, out = preprocessed
    meta = json.load(open(os.path.join(out, "meta.json")))
    assert meta["files"] == ["batch_00000.bin", "batch_00001.bin", "batch_00002.bin"]
    assert (meta["batch_size"], meta["image_count"], meta["padded_images"]) == (BATCH, IMAGES, 2)
    assert meta["input_shape"] == [BATCH, 3, 32, 32] and meta["class_names"] == list(CLASS_NAMES)
    written = np.concatenate([np.fromfile(os.path.join(out, "images", name), np.float32).reshape(BATCH, 3, 32, 32)
                              for name in meta["files"]])
    images, labels = zip(*create_dataset(data, "eval", 5, 32).create_tuple_iterator(output_numpy=True))
    np.testing.assert_array_equal(written[:IMAGES], np.concatenate(images))
    assert not written[IMAGES:].any()
    np.testing.assert_array_equal(np.load(os.path.join(out, "labels.npy")), np.concatenate(labels))


def write_results(result_dir: str, logits: np.ndarray) -> None:
    os.makedirs(result_dir, exist_ok=True)
    for index in range(len(logits) // BATCH):
        logits[index * BATCH:(index + 1) * BATCH].astype(np.float32).tofile(
            os.path.join(result_dir, f"batch_{index:05d}_0.bin"))


def test_accuracy_counts_real_images_only(preprocessed, tmp_path):
    _, out = preprocessed
    labels = np.load(os.path.join(out, "labels.npy"))
    logits = np.zeros((3 * BATCH, 10), np.float32)
    logits[np.arange(IMAGES), labels] = 1.0  # every real image right (top-1)
    logits[:3, :] = 0.0
    logits[np.arange(3), (labels[:3] + 1) % 10] = 2.0  # the first 3 wrong at top-1, right at top-5
    logits[np.arange(3), labels[:3]] = 1.0
    logits[IMAGES:, :] = np.eye(10)[:2] * 9  # padding rows: would change the counts if scored
    write_results(str(tmp_path / "result_Files"), logits)
    postprocess.main(["--result_path", str(tmp_path / "result_Files"), "--label_path", os.path.join(out, "labels.npy")])
    line = "top-1 accuracy: 0.7000 (7/10), top-5 accuracy: 1.0000 (10/10)"
    assert (tmp_path / "acc.log").read_text() == line + "\n"
    # The confusion matrix, like eval.py's --result_json: rows = true class, padding not counted.
    record = json.load(open(tmp_path / "acc.json"))
    matrix = np.array(record["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == IMAGES and np.trace(matrix) == 7
    for index in range(3):
        assert matrix[labels[index], (labels[index] + 1) % 10] >= 1
    assert record["class_names"] == list(CLASS_NAMES) and record["top1"] == 0.7


@pytest.mark.parametrize("damage, match", [("truncate", "has 100 bytes, expected 160"), ("remove", "is missing")])
def test_damaged_result_file_is_named(preprocessed, tmp_path, damage, match):
    _, out = preprocessed
    write_results(str(tmp_path / "r"), np.zeros((3 * BATCH, 10), np.float32))
    victim = tmp_path / "r" / "batch_00001_0.bin"
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:100])
    else:
        victim.unlink()
    with pytest.raises(UserError, match=match) as info:
        postprocess.main(["--result_path", str(tmp_path / "r"), "--label_path", os.path.join(out, "labels.npy")])
    assert str(victim) in str(info.value)
