"""CIFAR-10 (binary version): validation, reading, and the MindSpore input pipeline.

MindSpore's `Cifar10Dataset` assumes 10,000 records per file, so records are read here with
numpy, sharded by rank here, and fed through a random-access `GeneratorDataset`. Two
layouts are accepted (see README "Data"):
  * the official archive's folder `cifar-10-batches-bin/` (train: data_batch_1..5.bin,
    eval: test_batch.bin), given itself or as its parent;
  * the model-zoo layout `DATA/cifar-10-batches-bin` (train) + `DATA/cifar-10-verify-bin`
    (eval, holding test_batch.bin), given as DATA.
"""
import os

import numpy as np

from src.errors import UserError

IMAGE_SHAPE = (3, 32, 32)  # stored as planes: R, then G, then B
IMAGE_BYTES = 3 * 32 * 32
RECORD_BYTES = 1 + IMAGE_BYTES
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
EVAL_FILES = ("test_batch.bin",)
TRAIN_DIR, EVAL_DIR = "cifar-10-batches-bin", "cifar-10-verify-bin"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# The seed's normalisation constants (per channel, on [0, 1] pixels).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
LAYOUT_HINT = ("expected the CIFAR-10 binary version: a cifar-10-batches-bin folder with data_batch_1..5.bin "
               "and test_batch.bin, or DATA/cifar-10-batches-bin + DATA/cifar-10-verify-bin (see README \"Data\")")


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
    tmp = f"{path}.tmp"
    records.tofile(tmp)
    os.replace(tmp, path)


class _ArraySource:
    """Random-access source for `GeneratorDataset`, so that it can shuffle."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __getitem__(self, index):
        return self.images[index], np.asarray(self.labels[index])  # 0-d array: numpy 2 refuses scalars here

    def __len__(self):
        return len(self.labels)


def default_workers(requested: int = 0) -> int:
    """`requested`, or when 0, a worker count that fits the machine (at most 4)."""
    return requested if requested > 0 else max(1, min(4, os.cpu_count() or 1))


def shard_indices(count: int, rank_id: int, rank_size: int, equal: bool) -> np.ndarray:
    """The records of rank `rank_id`: every `rank_size`-th one, starting at `rank_id`.

    Shards are disjoint and together cover the set. With `equal` (training), the last
    `count % rank_size` records are left out so that every rank takes the same number of steps,
    which the gradient all-reduce needs. MindSpore's own sharding pads short shards with
    repeated records instead, so shards would overlap.
    """
    if not 0 <= rank_id < rank_size:
        raise ValueError(f"rank_id must be in [0, {rank_size}), got {rank_id}")
    usable = count - count % rank_size if equal else count
    return np.arange(rank_id, usable, rank_size)


def create_dataset(data_path: str, split: str, batch_size: int, image_size: int = 224, *,
                   eval_data_path: str | None = None, shuffle: bool | None = None,
                   augment: bool | None = None, rank_id: int = 0, rank_size: int = 1,
                   num_parallel_workers: int = 0, seed: int = 1, drop_remainder: bool | None = None,
                   class_num: int = 10):
    """A batched MindSpore dataset of (float32 NCHW image, int32 label).

    Train: random crop 32 with 4-pixel padding and horizontal flip (when `augment`), resize to
    `image_size`, rescale to [0, 1], normalise with the CIFAR-10 mean/std, HWC->CHW; shuffled,
    remainder dropped, sharded by `rank_id`/`rank_size`.
    Eval: the same without augmentation, in file order, every image kept (no dropped remainder).
    With `rank_size` > 1 each rank reads its own disjoint shard (see `shard_indices`).
    """
    import mindspore.dataset as ds
    from mindspore.dataset import vision

    is_train = split == "train"
    shuffle = is_train if shuffle is None else shuffle
    augment = is_train if augment is None else augment
    drop_remainder = is_train if drop_remainder is None else drop_remainder
    images, labels = read_cifar10_bin(resolve_split_files(data_path, split, eval_data_path), class_num)
    if rank_size > 1:
        shard = shard_indices(len(labels), rank_id, rank_size, equal=is_train)
        images, labels = images[shard], labels[shard]
    ds.config.set_seed(seed)
    workers = default_workers(num_parallel_workers)
    dataset = ds.GeneratorDataset(_ArraySource(images, labels), column_names=["image", "label"],
                                  shuffle=shuffle, python_multiprocessing=False)
    transforms = []
    if augment:
        transforms += [vision.RandomCrop((32, 32), (4, 4, 4, 4)), vision.RandomHorizontalFlip(prob=0.5)]
    if image_size != 32:
        transforms.append(vision.Resize((image_size, image_size)))
    transforms += [vision.Rescale(1.0 / 255.0, 0.0), vision.Normalize(CIFAR10_MEAN, CIFAR10_STD),
                   vision.HWC2CHW()]
    dataset = dataset.map(transforms, input_columns="image", num_parallel_workers=workers)
    return dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_workers=workers)


def download_for_training(data_path: str, url: str, md5: str) -> str:
    """For `--download`: fetch CIFAR-10 unless `data_path` already holds it; return a status line.

    The archive unpacks to `cifar-10-batches-bin/`, so a `data_path` ending in that name is
    filled through its parent, and any other `data_path` gets the folder inside it.
    """
    from src.download import ARCHIVE_FOLDER, download_cifar10

    try:
        resolve_split_files(data_path, "train")
        return f"--download: {data_path} already holds the CIFAR-10 training files; not downloading"
    except UserError:
        pass
    absolute = os.path.abspath(data_path)
    target = os.path.dirname(absolute) if os.path.basename(absolute) == ARCHIVE_FOLDER else absolute
    return f"--download: CIFAR-10 unpacked into {download_cifar10(target, url, md5)}"


def main(argv: list[str] | None = None) -> int:
    """`python -m src.dataset download DIR`: fetch the official archive into DIR/cifar-10-batches-bin."""
    import argparse

    from src.config import DEFAULT_CONFIG, read_yaml
    from src.download import download_cifar10

    defaults = read_yaml(DEFAULT_CONFIG)
    parser = argparse.ArgumentParser(prog="python -m src.dataset", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="download, verify and unpack CIFAR-10 (binary version)")
    fetch.add_argument("dir", help="folder that receives cifar-10-batches-bin/")
    fetch.add_argument("--url", default=defaults["download_url"], help="default: %(default)s")
    fetch.add_argument("--md5", default=defaults["download_md5"], help="default: %(default)s")
    args = parser.parse_args(argv)
    download_cifar10(args.dir, args.url, args.md5)
    return 0


if __name__ == "__main__":
    from src.errors import run_cli

    run_cli(main)
