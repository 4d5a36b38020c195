"""--optimizer and --grad_clip_norm: one update of a small net checked against the formulas."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from src.training.build import split_weight_decay
from src.training.optimizer import create_optimizer

LR, DECAY = 0.1, 0.5
WEIGHT = np.array([[1.0, -2.0], [3.0, 0.5]], np.float32)
GRADIENT = np.array([[3.0, 0.0], [0.0, 4.0]], np.float32)  # global norm 5 (with the bias's zeros)


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(2, 2)  # parameters fc.weight, fc.bias: the no-decay group takes the bias


def step(name, gradient_scale=1.0, loss_scale=1.0, clip_norm=0.0, steps=1):
    """(weight, bias) after `steps` updates with the fixed gradients times `gradient_scale`."""
    net = Net().fc
    net.weight.set_data(ms.Tensor(WEIGHT))
    net.bias.set_data(ms.Tensor(np.ones(2, np.float32)))
    lr = np.full(steps, LR, np.float32)
    opt = create_optimizer(name, split_weight_decay(net.trainable_params(), DECAY), lr, 0.9, loss_scale, clip_norm)
    grads = (ms.Tensor(GRADIENT * gradient_scale), ms.Tensor(np.zeros(2, np.float32)))
    for _ in range(steps):
        opt(grads)
    return net.weight.asnumpy(), net.bias.asnumpy(), opt


def test_nesterov_looks_ahead_along_the_momentum():
    weight, _, _ = step("nesterov", steps=2)
    velocity = GRADIENT + DECAY * WEIGHT  # step 1 (coupled L2 decay, as the seed's Momentum)
    after_one = WEIGHT - LR * (GRADIENT + DECAY * WEIGHT + 0.9 * velocity)
    velocity2 = 0.9 * velocity + GRADIENT + DECAY * after_one
    expected = after_one - LR * (GRADIENT + DECAY * after_one + 0.9 * velocity2)
    np.testing.assert_allclose(weight, expected, rtol=1e-5)
    assert not np.allclose(weight, step("momentum", steps=2)[0])


def test_adamw_decay_is_decoupled_and_skips_the_bias():
    weight, bias, opt = step("adamw")
    m, v = 0.1 * GRADIENT, 0.001 * GRADIENT ** 2
    expected = WEIGHT - LR * (m / (np.sqrt(v) + 1e-8) + DECAY * WEIGHT)
    np.testing.assert_allclose(weight, expected, rtol=1e-4)
    np.testing.assert_array_equal(bias, np.ones(2))  # no gradient, no decay group
    assert all(p.name.startswith("moments.adam_") for p in opt.moments) and len(opt.moments) == 4


@pytest.mark.parametrize("name", ["momentum", "adamw"])
def test_clipping_scales_the_unscaled_gradients_to_the_norm(name):
    clipped = step(name, clip_norm=1.0)[2].moments[0].asnumpy()
    plain = step(name)[2].moments[0].asnumpy()
    if name == "momentum":  # the velocity after one step: decay + gradient / 5
        np.testing.assert_allclose(clipped - DECAY * WEIGHT, (plain - DECAY * WEIGHT) / 5, rtol=1e-5)
    else:
        np.testing.assert_allclose(clipped, plain / 5, rtol=1e-5)
    # The plain CPU step hands over loss-scaled gradients and the scale: the same update.
    scaled = step(name, gradient_scale=8.0, loss_scale=8.0, clip_norm=1.0)
    np.testing.assert_allclose(scaled[0], step(name, clip_norm=1.0)[0], rtol=1e-5)
    unclipped = step(name, gradient_scale=8.0, loss_scale=8.0)[2].moments[0].asnumpy()
    np.testing.assert_allclose(unclipped, plain, rtol=1e-5)
    # A norm above the gradients' leaves them alone.
    np.testing.assert_allclose(step(name, clip_norm=6.0)[0], step(name)[0], rtol=1e-6)


def test_the_run_builds_the_configured_optimizer():
    from src.sknet50 import create_model
    from src.training.build import build_optimizer
    from src.utils.config import load_config
    net = create_model("sknet_tiny", 10, stem_type="cifar")
    cfg = load_config(["--optimizer", "adamw", "--grad_clip_norm", "2", "--weight_decay", "0.05"])
    opt = build_optimizer(cfg, net, np.full(3, 1e-3, np.float32), 1.0, "CPU")
    assert type(opt).__name__ == "AdamW" and opt.clip_norm == 2.0
    assert type(build_optimizer(load_config([]), net, np.ones(3, np.float32), 1.0, "CPU")) is nn.Momentum
