"""--auto_augment and --cutout: MindSpore's own ops, seeded, training split only, values checked."""
import numpy as np
import pytest

from src.data.pipeline import create_dataset
from src.utils.errors import UserError
from tests.helpers.cifar_data import write_cifar_layout


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("aug")), per_train_file=4, test_count=6)


def images(data, split="train", seed=1, workers=1, **kwargs):
    dataset = create_dataset(data, split, 4, 32, shuffle=False, augment=False, seed=seed,
                             num_parallel_workers=workers, drop_remainder=False, **kwargs)
    return np.concatenate([batch for batch, _ in dataset.create_tuple_iterator(output_numpy=True)])


@pytest.mark.parametrize("kwargs, message", [
    ({"auto_augment": "imagenet"}, "--auto_augment 'imagenet' is not one of none, cifar10"),
    ({"cutout": -1}, "--cutout -1 must be 0 (off) to 32"),
    ({"cutout": 33}, "--cutout 33 must be 0 (off) to 32")])
def test_bad_values_are_one_line_errors(data, kwargs, message):
    with pytest.raises(UserError) as info:
        create_dataset(data, "train", 4, 32, **kwargs)
    assert str(info.value) == message or message in str(info.value)


def test_cutout_zeroes_one_square_of_at_most_n_by_n_pixels(data):
    plain, cut = images(data), images(data, cutout=8)
    changed = (plain != cut).any(axis=1)  # (N, H, W): pixels where any channel differs
    # MindSpore's CutOut clips the square at the border, and may place it wholly outside.
    assert (changed.sum(axis=(1, 2)) > 0).mean() > 0.5
    for index in np.flatnonzero(changed.any(axis=(1, 2))):
        rows, cols = np.nonzero(changed[index])
        assert len(rows) <= 64 and rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8, index
        assert not cut[index][:, rows, cols].any()  # zero after normalisation: the mean colour


def test_auto_augment_changes_training_images_and_is_seeded(data):
    plain = images(data)
    first, again = images(data, auto_augment="cifar10", cutout=8), images(data, auto_augment="cifar10", cutout=8)
    other_seed = images(data, seed=2, auto_augment="cifar10", cutout=8)
    np.testing.assert_array_equal(first, again)
    assert (first != plain).any() and (first != other_seed).any()


def test_evaluation_images_are_never_augmented(data):
    np.testing.assert_array_equal(images(data, "eval"), images(data, "eval", auto_augment="cifar10", cutout=8))
