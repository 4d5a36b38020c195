"""`CpuBatchNorm2d` (conv_impl onednn's BatchNorm) against nn.BatchNorm2d: parameters, outputs, gradients and
moving averages over two training steps, then inference. The whole network with it is
`test_conv_impl.test_whole_network_logits_and_gradients_match[onednn]`."""
import numpy as np
import mindspore as ms
import pytest
from mindspore import nn

from src.layers.cpu.batchnorm import CpuBatchNorm2d
from src.sknet50 import create_model

# Many pixels, few pixels, one pixel, and one value per channel (MindSpore's moving variance is NaN there);
# the last has 2^15 elements or more, so its 37 channels are split across the thread pool (unevenly).
SHAPES = [(4, 8, 6, 5), (8, 16, 2, 2), (5, 6, 1, 1), (1, 4, 1, 1), (8, 37, 12, 12)]


class WeightedSum(nn.Cell):
    def __init__(self, bn):
        super().__init__()
        self.bn = bn

    def construct(self, x, weights):
        return (self.bn(x) * weights).sum()


def run(bn, x, weights, gamma, beta):
    """Two training steps' outputs and gradients, the moving averages after them, and the inference output."""
    bn.gamma.set_data(ms.Tensor(gamma))
    bn.beta.set_data(ms.Tensor(beta))
    bn.set_train(True)
    grad = ms.grad(WeightedSum(bn), grad_position=0, weights=bn.trainable_params())
    results = {}
    for step in (1, 2):
        dx, (dgamma, dbeta) = grad(ms.Tensor(x * step), ms.Tensor(weights))
        results.update({f"dx{step}": dx, f"dgamma{step}": dgamma, f"dbeta{step}": dbeta})
    results["y"] = bn(ms.Tensor(x))  # a third training step
    results["moving_mean"], results["moving_variance"] = bn.moving_mean.value(), bn.moving_variance.value()
    bn.set_train(False)
    results["inference"] = bn(ms.Tensor(x))
    return {key: value.asnumpy() for key, value in results.items()}


def test_the_parameters_are_nn_batchnorm2d_s():
    ours, theirs = CpuBatchNorm2d(8, gamma_init="zeros"), nn.BatchNorm2d(8, gamma_init="zeros")
    assert [(p.name, p.requires_grad, p.shape) for p in ours.get_parameters()] == \
        [(p.name, p.requires_grad, p.shape) for p in theirs.get_parameters()]
    for a, b in zip(ours.get_parameters(), theirs.get_parameters()):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy(), err_msg=a.name)
    assert ours.eps == theirs.eps


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_cpu_batchnorm_matches_nn_batchnorm2d(shape):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
    weights = rng.standard_normal(shape).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, shape[1]).astype(np.float32)
    beta = rng.standard_normal(shape[1]).astype(np.float32)
    ours = run(CpuBatchNorm2d(shape[1]), x, weights, gamma, beta)
    theirs = run(nn.BatchNorm2d(shape[1]), x, weights, gamma, beta)
    for key, expected in theirs.items():
        # sums over up to 1,152 values: relative to the largest magnitude, as in tests/helpers/conv_checks.py
        scale = max(1.0, float(np.abs(np.nan_to_num(expected)).max()))
        if shape[0] * shape[2] * shape[3] == 1 and key == "y":
            scale *= 10  # x - mean is 0; MindSpore's rounding of the mean of one value, times 1/sqrt(eps) = 316
        np.testing.assert_allclose(ours[key], expected, rtol=0, atol=1e-5 * scale, err_msg=key)


@pytest.mark.parametrize("conv_impl, expected", [("onednn", CpuBatchNorm2d), ("fast", nn.BatchNorm2d)])
def test_only_onednn_networks_take_it(conv_impl, expected):
    net = create_model("sknet_tiny", 10, stem_type="imagenet", conv_impl=conv_impl)
    kinds = {type(cell) for _, cell in net.cells_and_names() if isinstance(cell, (CpuBatchNorm2d, nn.BatchNorm2d))}
    assert kinds == {expected}
