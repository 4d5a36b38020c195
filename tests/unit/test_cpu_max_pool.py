"""`CpuMaxPool2d` (the stem's inference max-pool with conv_impl onednn) against nn.MaxPool2d, bit for bit, and the
whole network in inference with onednn against native."""
import numpy as np
import mindspore as ms
import pytest
from mindspore import nn

from src.layers.cpu.max_pool import CpuMaxPool2d
from src.layers.create_layers import create_layers
from src.sknet50 import Stem, create_model
from tests.helpers.conv_checks import assert_close


SHAPES = [(2, 3, 16, 16), (1, 2, 7, 9), (2, 1, 2, 1), (1, 1, 1, 1)]
POOLS = [(3, 2, 1), (2, 2, 0), (3, 1, 1)]  # (kernel, stride, padding)
# every shape with every pool whose window fits in the padded image (nn.MaxPool2d refuses the others)
CASES = [(shape, pool) for shape in SHAPES for pool in POOLS if min(shape[2:]) + 2 * pool[2] >= pool[0]]


@pytest.mark.parametrize("shape, pool", CASES, ids=lambda case: "x".join(map(str, case)))
def test_cpu_max_pool_equals_nn_max_pool2d(shape, pool):
    kernel, stride, padding = pool
    x = ms.Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32) - 1)  # mostly negative
    expected = nn.MaxPool2d(kernel, stride, pad_mode="pad", padding=padding)(x).asnumpy()
    np.testing.assert_array_equal(CpuMaxPool2d(kernel, stride, padding)(x).asnumpy(), expected)


def test_the_onednn_stem_pools_with_it():
    assert isinstance(Stem("imagenet", 8, create_layers("onednn")).pool, CpuMaxPool2d)
    assert not isinstance(Stem("imagenet", 8, create_layers("fast")).pool, CpuMaxPool2d)
    assert Stem("cifar", 8, create_layers("onednn")).pool is None


def test_in_training_it_is_nn_max_pool2d_with_its_gradient():
    x = ms.Tensor(np.abs(np.random.default_rng(1).standard_normal((2, 3, 9, 9))).astype(np.float32))  # after a ReLU
    ours, theirs = CpuMaxPool2d(3, 2, 1), nn.MaxPool2d(3, 2, pad_mode="pad", padding=1)
    ours.set_train(True)
    theirs.set_train(True)
    np.testing.assert_array_equal(ms.grad(ours)(x).asnumpy(), ms.grad(theirs)(x).asnumpy())
    np.testing.assert_array_equal(ours(x).asnumpy(), theirs(x).asnumpy())


def test_onednn_in_inference_computes_what_native_does():
    native = create_model("sknet_tiny", 10, conv_impl="native")
    onednn = create_model("sknet_tiny", 10, conv_impl="onednn")
    ms.load_param_into_net(onednn, {param.name: param for param in native.get_parameters()}, strict_load=True)
    native.set_train(False)
    onednn.set_train(False)
    images = ms.Tensor(np.random.default_rng(2).standard_normal((3, 3, 64, 64)).astype(np.float32))
    assert_close(onednn(images).asnumpy(), native(images).asnumpy(), "logits in inference")
