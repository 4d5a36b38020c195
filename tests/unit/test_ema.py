"""The EMA of the weights (--ema_decay): the update rule, its warm-up, checkpoint entries, --use_ema loading."""
import os

import mindspore as ms
import numpy as np
import pytest

from src.sknet50 import create_model
from mindspore import nn

from src.training.ema import WeightsEMA, check_ema_decay
from src.utils.checkpoint_file import load_weights, save_checkpoint_atomic, weights_kind
from src.utils.config import load_config
from src.utils.errors import UserError


def tiny():
    return create_model("sknet_tiny", 10, stem_type="cifar", conv_impl="fast")


def test_new_keys_default_to_off():
    cfg = load_config([])
    assert (cfg.ema_decay, cfg.use_ema, cfg.deterministic, cfg.auto_augment, cfg.cutout) == (0.0, False, False,
                                                                                             "none", 0)


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_decay_outside_0_1_is_a_one_line_error(decay):
    with pytest.raises(UserError, match=f"--ema_decay must be 0 \\(off\\) or in \\(0, 1\\), e.g. 0.9999; got {decay}"):
        check_ema_decay(decay)


def moved_by_one_update(net, ema, skipped=False):
    """Add 1 to every parameter, run one update; return how far each average moved towards it."""
    params = list(net.get_parameters())
    start = {p.name: p.asnumpy().copy() for p in params}
    for param in params:
        param.set_data(ms.Tensor(param.asnumpy() + 1.0))
    ema.update(ms.Tensor(skipped))
    return {a.name[len("ema."):]: a.asnumpy() - start[a.name[len("ema."):]] for a in ema.averages}


@pytest.mark.parametrize("decay, steps_done, weight_of_the_step", [(0.9999, 0, 0.9), (0.9999, 90, 0.09),
                                                                   (0.9, 10_000, 0.1)])
def test_warm_up_follows_timm_and_counts_the_steps_on_the_device(decay, steps_done, weight_of_the_step):
    net = nn.Dense(3, 2)
    ema = WeightsEMA(net, decay, steps_done)
    for name, moved in moved_by_one_update(net, ema).items():  # decay_t = min(decay, (1 + t) / (10 + t))
        np.testing.assert_allclose(moved, weight_of_the_step, rtol=1e-5, err_msg=name)
    assert int(ema.update.steps.asnumpy()) == steps_done + 1


def test_a_skipped_step_leaves_the_averages_and_the_count():
    net = nn.Dense(3, 2)
    ema = WeightsEMA(net, 0.9, 5)
    assert all((moved == 0).all() for moved in moved_by_one_update(net, ema, skipped=True).values())
    assert int(ema.update.steps.asnumpy()) == 5


def test_every_parameter_and_statistic_moves_towards_the_network():
    net = tiny()
    ema = WeightsEMA(net, 0.9, 1000)  # decay 0.9 after the warm-up
    params = list(net.get_parameters())
    assert len(ema.averages) == len(params) and any(not p.requires_grad for p in params)  # BN statistics too
    for name, moved in moved_by_one_update(net, ema).items():
        np.testing.assert_allclose(moved, 0.1, rtol=1e-5, atol=1e-6, err_msg=name)


def test_entries_restore_and_copy_to_another_network(tmp_path):
    net = tiny()
    ema = WeightsEMA(net, 0.5, 100)
    for param in net.get_parameters():
        param.set_data(ms.Tensor(param.asnumpy() * 0 + 2.0))
    ema.update(ms.Tensor(False))
    saved = {entry["name"]: entry["data"].asnumpy() for entry in ema.entries()}
    other = WeightsEMA(tiny(), 0.5)
    assert other.restore(saved) and other.fingerprint() == ema.fingerprint()
    assert not other.restore({"moments.x": np.zeros(1)})  # a checkpoint without EMA: left unchanged
    with pytest.raises(UserError, match="lacks"):
        other.restore(dict(list(saved.items())[:3]))
    copy = ema.copy_to(tiny())
    for param in copy.get_parameters():
        np.testing.assert_array_equal(param.asnumpy(), saved["ema." + param.name])


def test_use_ema_loads_the_averages_or_says_there_are_none(tmp_path):
    net = tiny()
    ema = WeightsEMA(net, 0.5)
    for param in net.get_parameters():
        param.set_data(ms.Tensor(param.asnumpy() + 3.0))
    path = str(tmp_path / "train.ckpt")
    save_checkpoint_atomic([{"name": p.name, "data": p} for p in net.get_parameters()] + ema.entries(), path,
                           metadata={"resumable": True})
    target = tiny()
    meta, _, _ = load_weights(target, path, use_ema=True)
    first = next(iter(target.get_parameters()))
    np.testing.assert_array_equal(first.asnumpy(), ema.averages[0].asnumpy())
    assert weights_kind(meta, True) == "EMA" and weights_kind(meta, False) == "trained"
    load_weights(target, path)
    np.testing.assert_array_equal(first.asnumpy(), next(iter(net.get_parameters())).asnumpy())
    plain = str(tmp_path / "plain.ckpt")
    save_checkpoint_atomic(net, plain)
    with pytest.raises(UserError, match="holds no EMA weights \\(trained without --ema_decay\\); drop --use_ema"):
        load_weights(target, plain, use_ema=True)
    best = str(tmp_path / "best.ckpt")  # best.ckpt of an EMA run: its weights are the EMA
    save_checkpoint_atomic(net, best, metadata={"weights": "ema"})
    meta, _, _ = load_weights(target, best, use_ema=True)
    assert weights_kind(meta, False) == "EMA" and os.path.exists(best)
