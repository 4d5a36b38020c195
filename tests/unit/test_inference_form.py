"""The inference form of the network (BatchNorm folded) computes what the trained network computes,
and `Predictor` splits a batch into bounded calls without changing a logit.

Tolerance as for the conv implementations: max |folded - trained| <= 1e-4 * max(1, max |trained|).
"""
import numpy as np
import mindspore as ms
import pytest

from src.evaluation.predict import CPU_PIXELS_PER_CALL, Predictor, images_per_call
from src.layers.fold_batchnorm import FoldedBatchNorm, fold_batchnorm
from src.sknet50 import create_model

TOLERANCE = 1e-4


def trained_like(arch: str, stem_type: str, conv_impl: str):
    """A network whose BatchNorms hold statistics far from the initial ones, as after training."""
    net = create_model(arch, 10, stem_type=stem_type, conv_impl=conv_impl)
    rng = np.random.default_rng(0)
    for param in net.get_parameters():
        if param.name.endswith(("moving_mean", "beta")):
            param.set_data(ms.Tensor(rng.normal(0.0, 0.5, param.shape).astype(np.float32)))
        elif param.name.endswith(("moving_variance", "gamma")):
            param.set_data(ms.Tensor(rng.uniform(0.3, 3.0, param.shape).astype(np.float32)))
    net.set_train(False)
    return net


# imagenet 32: the last stage's 1x1 convs see 2x2 and 1x1 maps (onednn's 1x1 GEMM op, its ReLU epilogue too)
@pytest.mark.parametrize("stem_type, image_size", [("imagenet", 64), ("imagenet", 32), ("cifar", 16)])
@pytest.mark.parametrize("conv_impl", ["native", "split", "fast", "onednn"])
def test_the_folded_network_computes_the_trained_one(conv_impl, stem_type, image_size):
    net = trained_like("sknet_tiny", stem_type, conv_impl)
    folded = create_model("sknet_tiny", 10, stem_type=stem_type, conv_impl=conv_impl, fold_bn=True)
    folded = fold_batchnorm(net, folded)
    folded.set_train(False)
    images = ms.Tensor(np.random.default_rng(1).standard_normal((3, 3, image_size, image_size)).astype(np.float32))
    expected, actual = net(images).asnumpy(), folded(images).asnumpy()
    scale = max(1.0, float(np.abs(expected).max()))
    assert float(np.abs(actual - expected).max()) <= TOLERANCE * scale
    # every BatchNorm is gone: 2-d ones in the convs and 1-d ones in the SK attention
    norms = [name for name, cell in folded.cells_and_names() if type(cell).__name__.startswith("BatchNorm")]
    assert norms == []
    assert any(isinstance(cell, FoldedBatchNorm) for _, cell in folded.cells_and_names())


def test_folding_refuses_another_variant():
    net = create_model("sknet_tiny", 10)
    with pytest.raises(ValueError, match="not the same variant"):
        fold_batchnorm(net, create_model("sknet_tiny", 7, fold_bn=True))


def test_training_checkpoints_do_not_change():
    names = [p.name for p in create_model("sknet_tiny", 10).get_parameters()]
    assert not any(name.endswith("bn.bias") for name in names)
    assert "stem.bn.moving_variance" in names


class CountingNet:
    """Stands in for a network: logits = per-image sums, and it records each call's batch size."""

    def __init__(self):
        self.calls = []

    def __call__(self, images):
        values = images.asnumpy()
        self.calls.append(len(values))
        return ms.Tensor(values.reshape(len(values), -1).sum(axis=1, keepdims=True))


def test_the_predictor_runs_bounded_equal_calls_and_keeps_every_logit():
    images = np.random.default_rng(2).standard_normal((10, 3, 4, 4)).astype(np.float32)
    net = CountingNet()
    logits = Predictor(net, per_call=4)(images)
    assert net.calls == [4, 4, 4]  # the short last call is padded: one graph shape
    np.testing.assert_allclose(logits[:, 0], images.reshape(10, -1).sum(axis=1), rtol=1e-6)
    whole = CountingNet()
    Predictor(whole, per_call=None)(images)
    assert whole.calls == [10]


def test_calls_are_bounded_on_the_cpu_only():
    assert images_per_call(224, "CPU") == 4
    assert images_per_call(32, "CPU") == CPU_PIXELS_PER_CALL // 1024
    assert images_per_call(2000, "CPU") == 1
    assert images_per_call(224, "GPU") is None and images_per_call(224, "Ascend") is None
