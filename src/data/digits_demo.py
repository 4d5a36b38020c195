"""Turn scikit-learn's handwritten digits into a CIFAR-10 binary data set (the demo's data).

    python -m src.data.digits_demo OUT_DIR [--test_fraction 0.2] [--train_count N] [--seed 0]

`load_digits` holds 1,797 real 8x8 grey images of the digits 0-9. Each is scaled to 0-255,
enlarged 4x to 32x32 (every pixel becomes a 4x4 block, so no detail is invented), copied into
the R, G and B planes, and written in the real CIFAR-10 binary layout:
OUT_DIR/cifar-10-batches-bin/data_batch_1..5.bin (train) and test_batch.bin (held out, the
same share of every digit). scikit-learn is a demo/test extra, not a training dependency.
"""
import argparse
import os

import numpy as np

from src.data.cifar10_files import EVAL_FILES, TRAIN_DIR, TRAIN_FILES, write_cifar10_bin
from src.utils.errors import UserError, run_cli

UPSCALE = 4  # 8x8 -> 32x32


def digits_as_cifar() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as uint8 (N, 32, 32, 3) images and their labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise UserError("the demo needs scikit-learn: pip install -r requirements-test.txt") from err
    digits = load_digits()
    grey = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # pixel values are 0..16
    large = np.kron(grey, np.ones((UPSCALE, UPSCALE), dtype=np.uint8))
    return np.repeat(large[..., None], 3, axis=3), digits.target.astype(np.uint8)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with the same share of each class in the test part."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = int(round(len(members) * test_fraction))
        test.append(members[:cut])
        train.append(members[cut:])
    return rng.permutation(np.concatenate(train)), np.sort(np.concatenate(test))


def write_digits_dataset(out_dir: str, test_fraction: float = 0.2, train_count: int = 0, seed: int = 0) -> str:
    """Write the demo set; return its `cifar-10-batches-bin` folder (the --data_path to train on).

    Args:
        out_dir: parent folder of the data set.
        test_fraction: share of each digit held out for testing.
        train_count: use only this many training images (0: all), to make a quicker demo.
        seed: fixes the split.
    """
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"--test_fraction must be between 0 and 1, got {test_fraction}")
    images, labels = digits_as_cifar()
    train, test = stratified_split(labels, test_fraction, seed)
    if train_count:
        train = train[:train_count]
    folder = os.path.join(out_dir, TRAIN_DIR)
    os.makedirs(folder, exist_ok=True)
    for name, part in zip(TRAIN_FILES, np.array_split(train, len(TRAIN_FILES))):
        write_cifar10_bin(os.path.join(folder, name), images[part], labels[part])
    write_cifar10_bin(os.path.join(folder, EVAL_FILES[0]), images[test], labels[test])
    print(f"wrote {len(train)} training and {len(test)} test digits in CIFAR-10 binary format to {folder}")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.data.digits_demo", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--test_fraction", type=float, default=0.2)
    parser.add_argument("--train_count", type=int, default=0, help="0: all training digits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_digits_dataset(args.out_dir, args.test_fraction, args.train_count, args.seed)
    return 0


if __name__ == "__main__":
    run_cli(main)
