"""The MindSpore input pipeline: transforms, shuffling, batching, and the shard of each rank."""
import os

import mindspore.dataset as ds
import numpy as np
from mindspore.dataset import vision

from src.data.augment import auto_augment_ops, check_augment_settings, cutout_ops
from src.data.mixing import Mixing
from src.data.cifar10_files import read_cifar10_bin, resolve_split_files

# The normalisation constants of the original model-zoo implementation (per channel, on [0, 1] pixels).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)


def normalise_ops() -> list:
    """uint8 HWC pixels to the network's scale: [0, 1], then the CIFAR-10 mean and std per channel."""
    return [vision.Rescale(1.0 / 255.0, 0.0), vision.Normalize(CIFAR10_MEAN, CIFAR10_STD)]


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
                   class_num: int = 10, auto_augment: str = "none", cutout: int = 0,
                   randaugment: tuple[int, int] = (2, 9), mixing: Mixing | None = None):
    """A batched MindSpore dataset of (float32 NCHW image, int32 label).

    Train: random crop 32 with 4-pixel padding and horizontal flip (when `augment`), resize to
    `image_size`, rescale to [0, 1], normalise with the CIFAR-10 mean/std, HWC->CHW; shuffled,
    remainder dropped, sharded by `rank_id`/`rank_size`.
    Train, whatever `augment` says: AutoAugment or RandAugment (`auto_augment`, after the flip; `randaugment`:
    its operation count and magnitude) and Cutout (`cutout`
    pixels of the 32x32 image, after normalisation) when set; see `src.data.augment`.
    Train, with `mixing` enabled: mixup/CutMix over each batch, and the labels become float32 soft targets
    (B, class_num) with the label smoothing inside (`src.data.mixing`).
    Eval: the same without augmentation, in file order, every image kept (no dropped remainder).
    With `rank_size` > 1 each rank reads its own disjoint shard (see `shard_indices`).
    """
    is_train = split == "train"
    shuffle = is_train if shuffle is None else shuffle
    augment = is_train if augment is None else augment
    drop_remainder = is_train if drop_remainder is None else drop_remainder
    check_augment_settings(auto_augment, cutout)
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
    if is_train:
        transforms += auto_augment_ops(auto_augment, *randaugment)
    if image_size != 32:
        transforms.append(vision.Resize((image_size, image_size)))
    transforms += [*normalise_ops(), *(cutout_ops(cutout, image_size) if is_train else []), vision.HWC2CHW()]
    dataset = dataset.map(transforms, input_columns="image", num_parallel_workers=workers)
    if is_train and mixing is not None and mixing.enabled:
        return dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_workers=workers,
                             per_batch_map=mixing, input_columns=["image", "label"])
    return dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_workers=workers)
