"""The EMA of the weights (--ema_decay): the update rule, its warm-up, checkpoint entries, --use_ema loading."""
import os

import mindspore as ms
import numpy as np
import pytest

from src.sknet50 import create_model
from src.training.ema import WeightsEMA, check_ema_decay, warmed_decay
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


def test_warm_up_follows_timm():
    assert warmed_decay(0.9999, 0) == pytest.approx(0.1)
    assert warmed_decay(0.9999, 90) == pytest.approx(91 / 100)
    assert warmed_decay(0.9, 10_000) == 0.9


def test_every_parameter_and_statistic_moves_towards_the_network():
    net = tiny()
    ema = WeightsEMA(net, 0.9)
    params = list(net.get_parameters())
    assert len(ema.averages) == len(params) and any(not p.requires_grad for p in params)  # BN statistics too
    start = {p.name: p.asnumpy().copy() for p in params}
    for param in params:
        param.set_data(ms.Tensor(param.asnumpy() + 1.0))
    ema.update(1000)  # decay 0.9 after the warm-up
    for average in ema.averages:
        name = average.name[len("ema."):]
        np.testing.assert_allclose(average.asnumpy(), start[name] + 0.1, rtol=1e-5, atol=1e-6, err_msg=name)


def test_entries_restore_and_copy_to_another_network(tmp_path):
    net = tiny()
    ema = WeightsEMA(net, 0.5)
    for param in net.get_parameters():
        param.set_data(ms.Tensor(param.asnumpy() * 0 + 2.0))
    ema.update(100)
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
