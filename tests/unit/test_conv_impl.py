"""The `fast` and `split` conv implementations compute the same function as `native`, from the same parameters.

Tolerance: max |fast - native| <= 1e-4 * max(1, max |native|), for outputs and for the
gradients with respect to the input and the weight. The spatial sizes are reduced, but every
(in, out, kernel, stride, dilation, groups) of SKNet-50 is checked, on images large and small
enough to take each branch of the fast path (native/GEMM 1x1, small-image dense GEMM,
broadcast/batch-folded im2col GEMM, col2im or a conv for the input gradient).
"""
import os

import numpy as np
import mindspore as ms
import pytest
from mindspore import nn, ops

from src.training.loss import CrossEntropySmooth
from src.layers import selective_kernel
from src.layers.conv import Conv2d
from src.layers.cpu import gemm_conv
from src.layers.cpu.gemm_conv import NATIVE_POINTWISE_MIN_PIXELS, SMALL_IMAGE_MAX_PIXELS
from src.layers.create_layers import LAYERS, create_layers
from src.sknet50 import sknet50, sknet_tiny
from src.utils import device
from src.utils.config import load_config
from src.utils.device import MODEL_CONV_IMPLS, check_device_choices, resolve_conv_impl
from src.utils.errors import UserError
from tests.helpers.conv_checks import assert_close, assert_close_relative, check_matches_native, smooth_for_gradients


def sknet50_conv_shapes() -> list[tuple[int, int, int, int, int, int]]:
    """Every distinct (in, out, kernel, stride, dilation, groups) of SKNet-50, read from the network."""
    shapes = {(cell.in_channels, cell.out_channels, cell.kernel_size, cell.stride, cell.dilation, cell.groups)
              for _, cell in sknet50(10).cells_and_names() if isinstance(cell, Conv2d)}
    return sorted(shapes)


def conv_cases():
    """Each SKNet-50 conv shape on a small image (few output pixels) and a larger one (many)."""
    cases = []
    for shape in sknet50_conv_shapes():
        kernel, stride = shape[2], shape[3]
        for size in (2, 16 if kernel == 7 else 8):
            out = (size - 1) // stride + 1
            cases.append(pytest.param(shape, size, id=f"{'x'.join(map(str, shape))}-{size}px-out{out}"))
    return cases


def test_the_cases_cover_every_branch_of_the_fast_path():
    shapes = sknet50_conv_shapes()
    assert {s[2] for s in shapes} == {1, 3, 7} and {s[3] for s in shapes} == {1, 2}
    assert {s[4] for s in shapes} == {1, 2} and {s[5] for s in shapes} == {1, 32}
    out_pixels = [((p.values[1] - 1) // p.values[0][3] + 1) ** 2 for p in conv_cases()]
    assert min(out_pixels) < NATIVE_POINTWISE_MIN_PIXELS <= max(out_pixels)
    # grouped convs: 1 pixel < 4 channels per group (batch folded) and 64 pixels > 32 (broadcast)
    assert min(out_pixels) < 4 and max(out_pixels) > 32
    # 3x3 convs: small images (dense GEMM) and larger ones (im2col), strided and not
    small = {(size * size <= SMALL_IMAGE_MAX_PIXELS, shape[3])
             for shape, size in (p.values for p in conv_cases()) if shape[2] == 3}
    assert small == {(True, 1), (True, 2), (False, 1), (False, 2)}


@pytest.mark.slow
@pytest.mark.parametrize("shape, size", conv_cases())
def test_fast_conv_matches_native(shape, size):
    check_matches_native(shape, size, "fast")


def im2col_cases():
    """The cases that take `GemmConv` (im2col), whose columns are small enough to be kept."""
    return [case for case in conv_cases()
            if case.values[0][2] > 1 and case.values[1] ** 2 > SMALL_IMAGE_MAX_PIXELS]


def test_im2col_cases_cover_both_layouts_and_strides():
    shapes = [case.values[0] for case in im2col_cases()]
    assert {s[3] for s in shapes} == {1, 2} and {s[5] for s in shapes} == {1, 32}
    assert {s[1] // s[5] for s in shapes} == {4, 8, 16, 32, 64}  # broadcast and batch-folded GEMMs


@pytest.mark.slow
@pytest.mark.parametrize("shape, size", im2col_cases())
def test_fast_conv_matches_native_when_columns_are_recomputed(shape, size, monkeypatch):
    monkeypatch.setattr(gemm_conv, "KEEP_COLUMNS_MAX_ELEMENTS", 0)
    check_matches_native(shape, size, "fast")


class TrainGradients(nn.Cell):
    """Logits and the gradients of the label-smoothed loss w.r.t. every trainable parameter."""

    def __init__(self, net: nn.Cell):
        super().__init__()
        self.net = net
        self.loss = CrossEntropySmooth(smooth_factor=0.1, num_classes=10)
        self.grad = ops.GradOperation(get_by_list=True)
        self.weights = ms.ParameterTuple(net.trainable_params())

    def loss_of(self, images, labels):
        return self.loss(self.net(images), labels)

    def construct(self, images, labels):
        return self.net(images), self.grad(self.loss_of, self.weights)(images, labels)


def tiny_pair(conv_impl: str = "fast"):
    """sknet_tiny twice, native and `conv_impl`, the second to be loaded from the native one's checkpoint."""
    ms.set_seed(3)
    native = sknet_tiny(10, conv_impl="native")
    fast = sknet_tiny(10, conv_impl=conv_impl)
    return native, fast


def test_checkpoints_move_between_implementations(tmp_path):
    native, fast = tiny_pair()
    assert {n: p.shape for n, p in native.parameters_and_names()} == \
        {n: p.shape for n, p in fast.parameters_and_names()}
    path = os.path.join(tmp_path, "native.ckpt")
    ms.save_checkpoint(native, path)
    not_loaded, unused = ms.load_param_into_net(fast, ms.load_checkpoint(path), strict_load=True)
    assert not not_loaded and not unused
    for (name, a), (_, b) in zip(native.parameters_and_names(), fast.parameters_and_names()):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy(), err_msg=name)


def randomise_batchnorms(net: nn.Cell, rng: np.random.Generator) -> None:
    """Every BatchNorm's gamma, beta and moving statistics away from 1 and 0, so that in eval mode each is a
    real per-channel affine map and the gradients of every layer depend on it."""
    draws = {"gamma": lambda shape: rng.uniform(0.5, 1.5, shape), "beta": lambda shape: rng.normal(0, 0.1, shape),
             "moving_mean": lambda shape: rng.normal(0, 0.1, shape),
             "moving_variance": lambda shape: rng.uniform(0.5, 2.0, shape)}
    for name, param in net.parameters_and_names():
        kind = name.rsplit(".", 1)[-1]
        if kind in draws:
            param.set_data(ms.Tensor(draws[kind](param.shape).astype(np.float32)))


def load_parameters(net: nn.Cell, parameters: dict[str, np.ndarray]) -> None:
    ms.load_param_into_net(net, {n: ms.Parameter(ms.Tensor(v), name=n) for n, v in parameters.items()},
                           strict_load=True)


# Whole-network gradients are compared on smooth_for_gradients networks. On the real one they are chaotic:
# a pre-activation within rounding of 0, or of its max-pool neighbour, sends gradient elsewhere, and a
# training-mode BatchNorm spreads that; which ones are that close depends on the CPU's rounding. 1e-6 noise
# on native's own conv weights moved its gradients (max error / max |gradient| of one parameter) by up to
# 2.2% in training mode, 0.29% with only the BatchNorms in eval mode, and 1e-5 on the smooth network, where
# fast and onednn differed from native by at most 2e-6 (AMD EPYC).
WHOLE_NETWORK_GRADIENT_TOLERANCE = 1e-4  # x max |native gradient| of each parameter: 10x that noise


@pytest.mark.slow
@pytest.mark.parametrize("conv_impl", ["fast", "onednn"])
def test_whole_network_logits_and_gradients_match(conv_impl, monkeypatch):
    # Every SK map through the fast unit's explicit broadcast (the direct Mul is native's own code).
    monkeypatch.setattr(selective_kernel, "BROADCAST_MUL_MAX_ELEMENTS", 0)
    native, fast = tiny_pair(conv_impl)
    rng = np.random.default_rng(8)
    randomise_batchnorms(native, rng)
    parameters = {n: p.asnumpy() for n, p in native.parameters_and_names()}
    load_parameters(fast, parameters)
    # 64x64 with the imagenet stem: stages at 16, 8, 4 and 2 pixels, so both GEMM layouts run.
    images = ms.Tensor(rng.standard_normal((4, 3, 64, 64), dtype=np.float32))
    labels = ms.Tensor(rng.integers(0, 10, 4).astype(np.int32))
    # The real network's forward passes are continuous in the weights (that 1e-6 noise moved the training
    # logits by ~1e-5 of their scale and the new moving statistics by ~1e-6): the common TOLERANCE.
    native.set_train(False)
    fast.set_train(False)
    assert_close(fast(images).asnumpy(), native(images).asnumpy(), "eval logits")
    native.set_train(True)
    fast.set_train(True)
    assert_close(fast(images).asnumpy(), native(images).asnumpy(), "training logits")
    for (name, a), (_, b) in zip(fast.parameters_and_names(), native.parameters_and_names()):
        if "moving_" in name:
            assert_close(a.asnumpy(), b.asnumpy(), f"{name} after a training step")
    for net in (native, fast):
        smooth_for_gradients(net)
    for net in (native, fast):  # the moving statistics as before the training step, the same in both
        load_parameters(net, parameters)
    native_logits, native_grads = TrainGradients(native)(images, labels)
    fast_logits, fast_grads = TrainGradients(fast)(images, labels)
    assert_close(fast_logits.asnumpy(), native_logits.asnumpy(), "logits of the smooth network")
    names = [p.name for p in native.trainable_params()]
    assert len(fast_grads) == len(native_grads) == len(names)
    for name, a, b in zip(names, fast_grads, native_grads):
        assert float(np.abs(b.asnumpy()).max()) > 0, f"gradient of {name} is zero: the check would be empty"
        assert_close_relative(a.asnumpy(), b.asnumpy(), f"gradient of {name}", WHOLE_NETWORK_GRADIENT_TOLERANCE)


def split_cases():
    """SKNet-50's grouped convs, each (kernel, stride, dilation) and each channels-per-group width at least
    once (the split slices by nothing else; an ungrouped conv is `native` itself), on a 6x6 image.

    Each case costs ~8 s (MindSpore's CPU runs 32 small convs), so the 14 grouped shapes are not all run.
    """
    cases, kinds, widths = [], set(), set()
    for shape in sknet50_conv_shapes():
        kind, width = shape[2:5], shape[0] // shape[5]
        if shape[5] > 1 and kind not in kinds and width not in widths:
            kinds.add(kind)
            widths.add(width)
            cases.append(pytest.param(shape, 6, id="x".join(map(str, shape))))
    return cases


def test_split_cases_include_every_kind_and_width_of_grouped_conv():
    grouped = {s for s in (p.values[0] for p in split_cases()) if s[5] > 1}
    assert {(s[2], s[3], s[4]) for s in grouped} == {(3, 1, 1), (3, 1, 2), (3, 2, 1), (3, 2, 2)}
    assert {s[0] // s[5] for s in grouped} == {4, 8, 16, 32}


@pytest.mark.slow
@pytest.mark.parametrize("shape, size", split_cases())
def test_split_conv_matches_native(shape, size):
    check_matches_native(shape, size, "split")


@pytest.mark.slow
def test_split_conv_has_the_parameters_of_native(tmp_path):
    ms.set_seed(3)
    native = sknet_tiny(10, conv_impl="native")
    split = sknet_tiny(10, conv_impl="split")
    path = os.path.join(tmp_path, "native.ckpt")
    ms.save_checkpoint(native, path)
    not_loaded, unused = ms.load_param_into_net(split, ms.load_checkpoint(path), strict_load=True)
    assert not not_loaded and not unused
    assert [(n, p.shape) for n, p in native.parameters_and_names()] == \
        [(n, p.shape) for n, p in split.parameters_and_names()]
    images = ms.Tensor(np.random.default_rng(5).standard_normal((2, 3, 32, 32), dtype=np.float32))
    native.set_train(False)
    split.set_train(False)
    assert_close(split(images).asnumpy(), native(images).asnumpy(), "eval logits")


@pytest.mark.parametrize("device_target", ["GPU", "Ascend"])
def test_auto_is_native_on_chips_and_split_is_opt_in(device_target):
    assert resolve_conv_impl("auto", device_target) == "native"
    assert resolve_conv_impl("native", device_target) == "native"
    assert resolve_conv_impl("split", device_target) == "split"


def test_auto_on_the_cpu_is_onednn_where_a_compiler_is_found_else_fast(tmp_path, monkeypatch, capsys):
    compiler = tmp_path / "c++"
    compiler.write_text("#!/bin/sh\n", encoding="utf-8")
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    assert resolve_conv_impl("auto", "CPU") == "onednn"
    assert resolve_conv_impl("auto", "CPU") == "onednn"
    monkeypatch.setenv("CXX", str(tmp_path / "missing-c++"))
    assert resolve_conv_impl("auto", "CPU") == "fast"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines  # one line per choice, not per call
    assert lines[0].startswith("conv_impl auto: onednn") and lines[1].startswith("conv_impl auto: fast")
    assert "missing-c++" in lines[1] and "install g++" in lines[1]


@pytest.mark.parametrize("message, conv_impl, device_target, hinted", [
    ("Conv2D: the group 32 is not supported", "auto", "Ascend", True),
    ("For 'Conv2D', groups must be 1 or in_channels", "native", "Ascend", True),
    ("Conv2D: the group 32 is not supported", "split", "Ascend", False),
    ("Conv2D: the group 32 is not supported", "auto", "GPU", False),
    ("out of device memory", "auto", "Ascend", False),
])
def test_a_grouped_conv_error_on_ascend_suggests_split(message, conv_impl, device_target, hinted):
    with pytest.raises(Exception) as caught:
        with device.conv_impl_hint(conv_impl, device_target):
            raise RuntimeError(message + "\n\n----- C++ Call Stack -----\nmore")
    if hinted:
        assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)
        assert "--conv_impl split" in str(caught.value) and message in str(caught.value)
    else:
        assert type(caught.value) is RuntimeError


def test_the_factory_builds_every_model_conv_impl():
    assert tuple(LAYERS) == MODEL_CONV_IMPLS


def test_fast_is_refused_off_the_cpu():
    assert resolve_conv_impl("fast", "CPU") == "fast"
    for device_target in ("GPU", "Ascend"):
        with pytest.raises(UserError, match=f"conv_impl fast .* is CPU-only; on {device_target} use --conv_impl auto"):
            resolve_conv_impl("fast", device_target)


def test_fast_from_a_cpu_runs_config_yaml_is_refused_before_the_device_is_set_up(tmp_path):
    path = os.path.join(tmp_path, "config.yaml")
    with open(path, "w", encoding="utf-8") as file:
        file.write("conv_impl: fast\n")
    cfg = load_config(["--config_path", path, "--device_target", "Ascend"])
    with pytest.raises(UserError) as error:
        check_device_choices(cfg)
    assert "\n" not in str(error.value) and "CPU-only" in str(error.value)


def test_bad_impl_or_device_is_an_error():
    with pytest.raises(UserError, match="conv_impl"):
        resolve_conv_impl("im2col", "CPU")
    with pytest.raises(UserError, match="device_target"):
        resolve_conv_impl("auto", "cpu")
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        create_layers("auto")


def test_conv_weights_are_kaiming_normal_over_the_fan_out():
    # He et al. (2015) with mode fan_out, as the paper's ResNeXt baseline: std sqrt(2 / (out * k * k)).
    ms.set_seed(1)
    checked = 0
    for name, cell in sknet_tiny(10, zero_init_last=True).cells_and_names():
        if isinstance(cell, Conv2d) and cell.weight.size >= 4096:  # enough draws for a 5% bound on the std
            weight = cell.weight.asnumpy()
            expected = np.sqrt(2.0 / (cell.out_channels * cell.kernel_size ** 2))
            assert abs(weight.std() / expected - 1) < 0.05 and abs(weight.mean()) < 0.1 * expected, name
            checked += 1
    assert checked >= 5


def test_batchnorms_start_at_one_and_zero_and_zero_init_last_zeroes_each_units_last_gamma():
    for zero_last in (False, True):
        for name, param in sknet_tiny(10, zero_init_last=zero_last).parameters_and_names():
            if name.endswith(("beta", "moving_mean")):
                assert not param.asnumpy().any(), name
            elif name.endswith(("gamma", "moving_variance")):
                expected = 0.0 if zero_last and name.endswith("conv3.bn.gamma") else 1.0
                np.testing.assert_array_equal(param.asnumpy(), expected, err_msg=name)
