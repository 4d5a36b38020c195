import numpy as np
import mindspore as ms
import pytest

from src.training.loss import CrossEntropySmooth


def reference(logits, labels, eps):
    k = logits.shape[1]
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    target = np.full_like(logits, eps / k)
    target[np.arange(len(labels)), labels] += 1 - eps
    return -(target * logp).sum(axis=1).mean()


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_matches_the_smoothed_target_formula(eps):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 8).astype(np.int32)
    loss = CrossEntropySmooth(smooth_factor=eps, num_classes=10)(ms.Tensor(logits), ms.Tensor(labels))
    assert float(loss.asnumpy()) == pytest.approx(reference(logits, labels, eps), rel=1e-5)


def test_rejects_a_bad_factor():
    with pytest.raises(ValueError):
        CrossEntropySmooth(smooth_factor=1.0)
