"""--drop_path_rate: stochastic depth on each unit's residual branch, linear in depth, training only."""
import mindspore as ms
import numpy as np
import pytest

from src.layers.drop_path import DropPath
from src.sknet50 import sknet50, sknet_tiny
from src.training.build import build_network
from src.utils.config import load_config


def rates(net):
    units = [unit for stage in (net.layer1, net.layer2, net.layer3, net.layer4) for unit in stage.cell_list]
    return [0.0 if unit.drop_path is None else unit.drop_path.rate for unit in units]


def test_the_rate_rises_linearly_from_the_first_unit_to_the_last():
    assert rates(sknet50(10, drop_path_rate=0.15)) == pytest.approx(np.linspace(0, 0.15, 16))
    assert rates(sknet50(10)) == [0.0] * 16
    net = build_network(load_config(["--arch", "sknet_tiny", "--drop_path_rate", "0.3"]), "CPU")
    assert rates(net) == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_a_dropped_sample_loses_its_branch_and_the_kept_ones_are_scaled():
    ms.set_seed(3)
    layer = DropPath(0.25)
    layer.set_train(True)
    x = np.random.default_rng(0).normal(size=(2000, 2, 2, 2)).astype(np.float32)
    out = layer(ms.Tensor(x)).asnumpy()
    dropped = (out == 0).all(axis=(1, 2, 3))
    assert 0.2 < dropped.mean() < 0.3
    np.testing.assert_allclose(out[~dropped], x[~dropped] / 0.75, rtol=1e-6)
    layer.set_train(False)
    np.testing.assert_array_equal(layer(ms.Tensor(x)).asnumpy(), x)


def test_the_network_is_unchanged_in_inference_and_keeps_its_parameters():
    ms.set_seed(0)
    plain = sknet_tiny(10, stem_type="cifar")
    dropping = sknet_tiny(10, stem_type="cifar", drop_path_rate=0.5)
    assert [p.name for p in plain.get_parameters()] == [p.name for p in dropping.get_parameters()]
    ms.load_param_into_net(dropping, {p.name: p for p in plain.get_parameters()})
    x = ms.Tensor(np.random.default_rng(1).normal(size=(8, 3, 32, 32)).astype(np.float32))
    plain.set_train(False)
    dropping.set_train(False)
    np.testing.assert_allclose(dropping(x).asnumpy(), plain(x).asnumpy(), rtol=1e-5, atol=1e-6)
    dropping.set_train(True)
    plain.set_train(True)
    assert not np.allclose(dropping(x).asnumpy(), plain(x).asnumpy(), atol=1e-4)
