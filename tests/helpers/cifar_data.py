"""Small, learnable data sets in the real CIFAR-10 binary format, for tests."""
import os

import numpy as np

from src.data.cifar10_files import EVAL_DIR, EVAL_FILES, TRAIN_DIR, TRAIN_FILES, write_cifar10_bin


def synthetic_images(count: int, seed: int, class_num: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class sets the colour of one quadrant pattern, plus noise: easy but not trivial."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % class_num).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 80, size=(count, 32, 32, 3), dtype=np.uint8)
    for index, label in enumerate(labels):
        row, col = divmod(int(label) % 4, 2)
        images[index, row * 16:(row + 1) * 16, col * 16:(col + 1) * 16, int(label) % 3] += 150
        if label >= 4:
            images[index, ::4, :, (int(label) + 1) % 3] += 100
    return images, labels


def write_cifar_layout(root: str, per_train_file: int, test_count: int, layout: str = "official",
                       seed: int = 0) -> str:
    """Write 5 train files + test_batch.bin; return the path to pass as --data_path.

    `official`: everything in ROOT/cifar-10-batches-bin (returned).
    `modelzoo`: ROOT/cifar-10-batches-bin (train) and ROOT/cifar-10-verify-bin (test); ROOT is returned.
    """
    train_dir = os.path.join(root, TRAIN_DIR)
    eval_dir = train_dir if layout == "official" else os.path.join(root, EVAL_DIR)
    os.makedirs(train_dir, exist_ok=True)
    os.makedirs(eval_dir, exist_ok=True)
    for index, name in enumerate(TRAIN_FILES):
        write_cifar10_bin(os.path.join(train_dir, name), *synthetic_images(per_train_file, seed + index))
    write_cifar10_bin(os.path.join(eval_dir, EVAL_FILES[0]), *synthetic_images(test_count, seed + 100))
    return train_dir if layout == "official" else root
