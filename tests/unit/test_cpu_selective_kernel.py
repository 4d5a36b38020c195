"""With `conv_impl onednn`, the two-path SK unit pools and selects by C++ ops (src.layers.cpu.sk_pool_select):
the unit computes what the `native` unit computes, forward and backward, on one thread and on the pool.

Tolerance as for every conv_impl (`conv_checks.assert_close`: 1e-4 x max(1, max |native|)). The
whole-network check is `test_conv_impl.test_whole_network_logits_and_gradients_match[onednn]`.
"""
import numpy as np
import mindspore as ms
import pytest

from src.layers.cpu.sk_pool_select import PooledSum, SelectOfTwo
from src.layers.create_layers import create_layers
from src.layers.selective_kernel import SelectiveKernelConv
from tests.helpers.conv_checks import OutputAndGradients, assert_close, smooth_for_gradients


def unit_results(conv_impl: str, parameters: dict, x: np.ndarray, upstream: np.ndarray, stride: int,
                 smooth: bool = False):
    """Training-mode output and gradients; with `smooth`, of the unit under `smooth_for_gradients`."""
    unit = SelectiveKernelConv(64, 64, stride=stride, groups=8, layers=create_layers(conv_impl))
    ms.load_param_into_net(unit, {name: ms.Parameter(value, name) for name, value in parameters.items()},
                           strict_load=True)
    unit.set_train(True)
    if smooth:
        smooth_for_gradients(unit)
    output, input_grad, weight_grads = OutputAndGradients(unit)(ms.Tensor(x), ms.Tensor(upstream))
    names = [p.name for p in unit.trainable_params()]
    return output.asnumpy(), input_grad.asnumpy(), dict(zip(names, (g.asnumpy() for g in weight_grads)))


# At batch 16, 5x5 maps run on the calling thread, 12x12 and (stride 2) 6x6 ones split over the pool
# (PARALLEL_MIN_ELEMENTS). Gradients are compared on the unit under smooth_for_gradients: with training-mode
# BatchNorms and ReLUs they are chaotic (1e-6 noise on native's own weights moved its 12x12 gradients by up
# to 770x the tolerance, so a pass depended on the CPU's rounding); the training-mode output is continuous.
@pytest.mark.parametrize("size, stride", [(5, 1), (12, 1), (12, 2)])
def test_the_onednn_unit_matches_native(size, stride):
    ms.set_seed(size + stride)
    reference = SelectiveKernelConv(64, 64, stride=stride, groups=8, layers=create_layers("native"))
    rng = np.random.default_rng(size)
    parameters = {}
    for name, param in reference.parameters_and_names():  # non-trivial BN affine parameters and statistics
        value = param.asnumpy()
        if name.endswith(("gamma", "moving_variance")):
            value = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
        elif name.endswith(("beta", "moving_mean")):
            value = rng.normal(0, 0.2, value.shape).astype(np.float32)
        parameters[name] = value
    x = rng.standard_normal((16, 64, size, size)).astype(np.float32)
    out_size = (size - 1) // stride + 1
    upstream = rng.standard_normal((16, 64, out_size, out_size)).astype(np.float32)
    native = unit_results("native", parameters, x, upstream, stride)
    onednn = unit_results("onednn", parameters, x, upstream, stride)
    assert_close(onednn[0], native[0], "training-mode output")
    native = unit_results("native", parameters, x, upstream, stride, smooth=True)
    onednn = unit_results("onednn", parameters, x, upstream, stride, smooth=True)
    assert_close(onednn[0], native[0], "output")
    assert_close(onednn[1], native[1], "input gradient")
    assert onednn[2].keys() == native[2].keys() and any("attention" in name for name in native[2])
    for name, value in native[2].items():
        assert_close(onednn[2][name], value, f"gradient of {name}")


def test_only_the_two_path_onednn_unit_uses_the_cpu_ops():
    two = SelectiveKernelConv(64, 64, groups=8, layers=create_layers("onednn"))
    assert isinstance(two.pool, PooledSum) and isinstance(two.select, SelectOfTwo)
    for unit in (SelectiveKernelConv(64, 64, groups=8, paths=3, layers=create_layers("onednn")),
                 SelectiveKernelConv(64, 64, groups=8, layers=create_layers("fast")),
                 SelectiveKernelConv(64, 64, groups=8, layers=create_layers("native"))):
        assert not isinstance(unit.pool, PooledSum) and not isinstance(unit.select, SelectOfTwo)
