"""--auto_augment and --cutout: MindSpore's own ops, seeded, training split only, values checked."""
import numpy as np
import pytest

from src.data.pipeline import CIFAR10_MEAN, CIFAR10_STD, create_dataset
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


def test_randaugment_is_seeded_and_takes_its_count_and_magnitude(data):
    plain = images(data)
    first, again = images(data, auto_augment="randaugment"), images(data, auto_augment="randaugment")
    np.testing.assert_array_equal(first, again)
    assert (first != plain).any() and (first != images(data, seed=2, auto_augment="randaugment")).any()
    assert (first != images(data, auto_augment="randaugment", randaugment=(2, 25))).any()
    assert (first != images(data, auto_augment="randaugment", randaugment=(4, 9))).any()
    np.testing.assert_array_equal(images(data, "eval"), images(data, "eval", auto_augment="randaugment"))


def test_the_run_passes_the_randaugment_keys_to_the_pipeline(data):
    from src.training.build import build_train_dataset
    from src.utils.config import load_config
    from src.utils.device import Placement
    flags = ["--data_path", data, "--image_size", "32", "--batch_size", "4", "--shuffle", "false", "--augment", "false",
             "--num_parallel_workers", "1", "--auto_augment", "randaugment", "--randaugment_num_ops", "3",
             "--randaugment_magnitude", "20"]
    dataset = build_train_dataset(load_config(flags), Placement("CPU"))
    built = np.concatenate([batch for batch, _ in dataset.create_tuple_iterator(output_numpy=True)])
    np.testing.assert_array_equal(built, images(data, auto_augment="randaugment", randaugment=(3, 20))[:len(built)])


def crops_of(original: np.ndarray, pad_value: np.ndarray) -> dict[tuple[bool, int, int], np.ndarray]:
    """Every 32x32 crop of `original` (CHW) padded by 4 pixels of `pad_value`, and of its left-right mirror."""
    padded = np.broadcast_to(pad_value[:, None, None], (3, 40, 40)).copy()
    crops = {}
    for mirrored in (False, True):
        padded[:, 4:36, 4:36] = original[:, :, ::-1] if mirrored else original
        for top in range(9):
            for left in range(9):
                crops[mirrored, top, left] = padded[:, top:top + 32, left:left + 32].copy()
    return crops


def test_training_augmentation_is_a_padded_random_crop_and_a_left_right_flip(data):
    plain = images(data)
    augmented = np.concatenate([batch for batch, _ in create_dataset(
        data, "train", 4, 32, shuffle=False, augment=True, seed=1, num_parallel_workers=1,
        drop_remainder=False).create_tuple_iterator(output_numpy=True)])
    pad_value = -np.array(CIFAR10_MEAN) / np.array(CIFAR10_STD)  # a zero pixel after normalisation
    found = []
    for original, image in zip(plain, augmented):
        matches = [key for key, crop in crops_of(original, pad_value).items()
                   if np.allclose(crop, image, rtol=0, atol=1e-5)]
        assert matches, "an augmented image is no shifted crop of its original or of the left-right mirror"
        found.append(matches[0])
    assert {mirrored for mirrored, _, _ in found} == {False, True}  # prob=0.5: both among 20 images
    assert len({(top, left) for _, top, left in found}) > 1
