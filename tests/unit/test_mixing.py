"""--mixup, --cutmix, --mixup_prob: timm's batch mode, soft targets with the smoothing inside, training only."""
import mindspore as ms
import numpy as np
import pytest

from src.data.mixing import Mixing
from src.data.pipeline import create_dataset
from src.training.loss import CrossEntropySmooth, SoftTargetCrossEntropy
from tests.helpers.cifar_data import write_cifar_layout

LABELS = np.array([0, 1, 2, 3, 4, 5])
IMAGES = np.arange(6, dtype=np.float32)[:, None, None, None] * np.ones((6, 3, 8, 8), np.float32)  # image i is all i


def mixed(mixup=0.0, cutmix=0.0, prob=1.0, smoothing=0.0, seed=0):
    return Mixing(mixup, cutmix, prob, smoothing, 10, 1).mix(IMAGES, LABELS, np.random.default_rng(seed))


def test_mixup_blends_each_image_with_the_mirrored_one_and_its_targets_alike():
    images, targets = mixed(mixup=0.8)
    lam = targets[0, 0]
    assert 0 < lam < 1 and targets[0, 5] == pytest.approx(1 - lam)
    np.testing.assert_allclose(images[0], lam * 0 + (1 - lam) * 5, rtol=1e-6)
    np.testing.assert_allclose(images[1], lam * 1 + (1 - lam) * 4, rtol=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1, rtol=1e-6)


def test_cutmix_pastes_a_box_and_its_lambda_is_the_box_area_left():
    for seed in range(20):  # boxes clipped at the border included
        images, targets = mixed(cutmix=1.0, seed=seed)
        pasted = (images[0] == 5).all(axis=0).mean()  # share of image 0 taken from image 5
        assert targets[0, 5] == pytest.approx(pasted, abs=1e-6) and targets[0, 0] == pytest.approx(1 - pasted, abs=1e-6)
        assert set(np.unique(images[0])) <= {0.0, 5.0}


def test_label_smoothing_applies_to_the_targets_before_they_are_mixed():
    _, plain = mixed(mixup=0.8, prob=0.0, smoothing=0.1)
    np.testing.assert_allclose(plain[0], [0.91] + [0.01] * 9, rtol=1e-6)
    _, targets = mixed(mixup=0.8, smoothing=0.1)
    lam = (targets[0, 0] - 0.01) / 0.9
    np.testing.assert_allclose(targets[0], 0.01 + 0.9 * np.eye(10)[0] * lam + 0.9 * np.eye(10)[5] * (1 - lam),
                               rtol=1e-5)


def test_mixup_prob_and_the_even_choice_between_the_two():
    kinds = []
    for seed in range(200):
        images, _ = mixed(mixup=0.8, cutmix=1.0, prob=0.5, seed=seed)
        kinds.append("none" if (images == IMAGES).all() else "cutmix" if set(np.unique(images[0])) <= {0.0, 5.0}
                     else "mixup")
    counts = {kind: kinds.count(kind) for kind in ("none", "mixup", "cutmix")}
    assert 70 < counts["none"] < 130 and counts["mixup"] > 25 and counts["cutmix"] > 25, counts


def test_soft_targets_of_unmixed_batches_give_the_smoothed_loss():
    logits = np.random.default_rng(0).normal(size=(6, 10)).astype(np.float32)
    _, targets = mixed(mixup=0.8, prob=0.0, smoothing=0.1)
    soft = SoftTargetCrossEntropy()(ms.Tensor(logits), ms.Tensor(targets)).asnumpy()
    smooth = CrossEntropySmooth(0.1, 10)(ms.Tensor(logits), ms.Tensor(LABELS.astype(np.int32))).asnumpy()
    assert soft == pytest.approx(smooth, rel=1e-5)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("mix")), per_train_file=4, test_count=6)


def batches(data, split, workers=1):
    dataset = create_dataset(data, split, 4, 32, shuffle=False, augment=False, num_parallel_workers=workers,
                             mixing=Mixing(0.8, 1.0, 1.0, 0.1, 10, 1))
    return list(dataset.create_tuple_iterator(output_numpy=True))


def test_the_pipeline_mixes_training_batches_only_and_the_same_way_with_more_workers(data):
    train = batches(data, "train")
    assert all(labels.shape == (4, 10) and labels.dtype == np.float32 for _, labels in train)
    for (images, labels), (images2, labels2) in zip(train, batches(data, "train", workers=2)):
        np.testing.assert_array_equal(images, images2)
        np.testing.assert_array_equal(labels, labels2)
    assert all(labels.ndim == 1 for _, labels in batches(data, "eval"))


def test_a_mixing_run_takes_the_soft_target_loss():
    from src.training.build import build_loss
    from src.utils.config import load_config
    assert isinstance(build_loss(load_config(["--cutmix", "1.0"])), SoftTargetCrossEntropy)
    assert isinstance(build_loss(load_config(["--mixup", "0.8", "--mixup_prob", "0.5"])), SoftTargetCrossEntropy)
    assert isinstance(build_loss(load_config([])), CrossEntropySmooth)
