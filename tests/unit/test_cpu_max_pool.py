"""`CpuMaxPool2d` (the stem's inference max-pool with conv_impl onednn) against nn.MaxPool2d, bit for bit, and the
whole network in inference with onednn against native."""
import numpy as np
import mindspore as ms
import pytest
from mindspore import nn

from src.layers.cpu_max_pool import CpuMaxPool2d
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


def test_the_onednn_stem_pools_with_it_in_inference_only():
    stem = Stem("imagenet", 8, "onednn")
    assert isinstance(stem.inference_pool, CpuMaxPool2d)
    assert Stem("imagenet", 8, "fast").inference_pool is None and Stem("cifar", 8, "onednn").inference_pool is None


def test_onednn_in_inference_computes_what_native_does():
    native = create_model("sknet_tiny", 10, conv_impl="native")
    onednn = create_model("sknet_tiny", 10, conv_impl="onednn")
    ms.load_param_into_net(onednn, {param.name: param for param in native.get_parameters()}, strict_load=True)
    native.set_train(False)
    onednn.set_train(False)
    images = ms.Tensor(np.random.default_rng(2).standard_normal((3, 3, 64, 64)).astype(np.float32))
    assert_close(onednn(images).asnumpy(), native(images).asnumpy(), "logits in inference")
