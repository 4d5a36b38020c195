"""The CIFAR-10 binary files: where they are, reading and validating them, writing them.

MindSpore's `Cifar10Dataset` assumes 10,000 records per file, so records are read here with
numpy (smaller sets in the same format, such as the tests' and the demo's, work too). Two
layouts are accepted (see README "Dataset"):
  * the official archive's folder `cifar-10-batches-bin/` (train: data_batch_1..5.bin,
    eval: test_batch.bin), given itself or as its parent;
  * the model-zoo layout `DATA/cifar-10-batches-bin` (train) + `DATA/cifar-10-verify-bin`
    (eval, holding test_batch.bin), given as DATA.
"""
import os

import numpy as np

from src.utils.atomic_file import write_atomic
from src.utils.errors import UserError

IMAGE_SHAPE = (3, 32, 32)  # stored as planes: R, then G, then B
IMAGE_BYTES = 3 * 32 * 32
RECORD_BYTES = 1 + IMAGE_BYTES
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
EVAL_FILES = ("test_batch.bin",)
TRAIN_DIR, EVAL_DIR = "cifar-10-batches-bin", "cifar-10-verify-bin"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
LAYOUT_HINT = ("expected the CIFAR-10 binary version: a cifar-10-batches-bin folder with data_batch_1..5.bin "
               "and test_batch.bin, or DATA/cifar-10-batches-bin + DATA/cifar-10-verify-bin (see README \"Dataset\")")


def _has_all(folder: str, names: tuple[str, ...]) -> bool:
    return all(os.path.isfile(os.path.join(folder, name)) for name in names)


def resolve_split_files(data_path: str, split: str, eval_data_path: str | None = None) -> list[str]:
    """The .bin files of `split` ("train" or "eval") under `data_path`, checked to exist.

    `eval_data_path`, when given, is the folder that holds test_batch.bin.
    """
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    names = TRAIN_FILES if split == "train" else EVAL_FILES
    if split == "eval" and eval_data_path:
        candidates = [eval_data_path]
    else:
        candidates = [data_path, os.path.join(data_path, EVAL_DIR if split == "eval" else TRAIN_DIR)]
        if split == "eval":
            candidates += [os.path.join(data_path, TRAIN_DIR),
                           os.path.join(os.path.dirname(os.path.abspath(data_path)), EVAL_DIR)]
    root = candidates[0]
    if not os.path.isdir(root):
        raise UserError(f"data folder {root} does not exist; {LAYOUT_HINT}")
    for folder in candidates:
        if _has_all(folder, names):
            return [os.path.join(folder, name) for name in names]
    # Name the first missing file in the most plausible folder.
    folder = next((c for c in candidates if os.path.isdir(c) and
                   any(os.path.isfile(os.path.join(c, n)) for n in names)), candidates[0])
    missing = next(n for n in names if not os.path.isfile(os.path.join(folder, n)))
    raise UserError(f"{folder} is missing {missing} for the {split} split; {LAYOUT_HINT}")


def read_cifar10_bin(paths: list[str], class_num: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate CIFAR-10 binary files.

    Returns (images uint8 of shape (N, 32, 32, 3), HWC; labels int32 of shape (N,)).
    A file that is empty, not a whole number of 3,073-byte records, or holds a label of
    `class_num` or more raises `UserError` naming the file.
    """
    images, labels = [], []
    for path in paths:
        try:
            raw = np.fromfile(path, dtype=np.uint8)
        except OSError as err:
            raise UserError(f"cannot read {path}: {err}") from err
        if raw.size == 0 or raw.size % RECORD_BYTES:
            raise UserError(f"{path} has {raw.size} bytes, not a whole number of {RECORD_BYTES}-byte records; "
                            f"{LAYOUT_HINT}")
        records = raw.reshape(-1, RECORD_BYTES)
        file_labels = records[:, 0].astype(np.int32)
        bad = np.flatnonzero(file_labels >= class_num)
        if bad.size:
            raise UserError(f"{path} record {bad[0]} has label {file_labels[bad[0]]}, above {class_num - 1}; "
                            f"{LAYOUT_HINT}")
        images.append(records[:, 1:].reshape(-1, *IMAGE_SHAPE).transpose(0, 2, 3, 1))
        labels.append(file_labels)
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def write_cifar10_bin(path: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write uint8 HWC images (N, 32, 32, 3) and labels in the CIFAR-10 binary format."""
    if images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8 or len(images) != len(labels):
        raise ValueError(f"expected uint8 images of shape (N, 32, 32, 3) and N labels, got {images.shape} "
                         f"{images.dtype} and {len(labels)} labels")
    records = np.empty((len(images), RECORD_BYTES), dtype=np.uint8)
    records[:, 0] = labels
    records[:, 1:] = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    write_atomic(path, records.tobytes())
