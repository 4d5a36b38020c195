"""The stem's pool (`ZeroPadMaxPool2d`: zero padding + an unpadded max-pool) against MindSpore's padded nn.MaxPool2d,
alone after a ReLU and inside the training stem: the same values and gradients, and an export without
MaxPool3DWithArgmax (the op MindSpore Lite 2.0 lacks)."""
import numpy as np
import mindspore as ms
import pytest
from mindspore import nn
from mindspore.train import mind_ir_pb2

from src.layers.create_layers import create_layers
from src.layers.zero_pad_max_pool import ZeroPadMaxPool2d
from src.sknet50 import Stem
from tests.helpers.conv_checks import OutputAndGradients


def padded_pool(kernel: int, stride: int, padding: int) -> nn.Cell:
    return nn.MaxPool2d(kernel, stride, pad_mode="pad", padding=padding)


def relu_then(pool: nn.Cell) -> nn.Cell:
    return nn.SequentialCell([nn.ReLU(), pool])


@pytest.mark.parametrize("shape, pool", [((2, 3, 16, 16), (3, 2, 1)), ((1, 2, 7, 9), (3, 2, 1)),
                                         ((2, 2, 5, 6), (3, 1, 1)), ((1, 1, 2, 2), (3, 2, 1))],
                         ids=lambda case: "x".join(map(str, case)))
def test_zero_padding_pools_a_relu_output_as_the_padded_pool_does(shape, pool):
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal(shape).astype(np.float32) - 0.5)  # mostly zeros after the ReLU: many ties
    expected = OutputAndGradients(relu_then(padded_pool(*pool)))
    actual = OutputAndGradients(relu_then(ZeroPadMaxPool2d(*pool)))
    upstream = ms.Tensor(rng.standard_normal(expected.cell(x).shape).astype(np.float32))
    (values, gradient), (expected_values, expected_gradient) = actual(x, upstream)[:2], expected(x, upstream)[:2]
    np.testing.assert_array_equal(values.asnumpy(), expected_values.asnumpy())  # a max is exact
    # the same elements receive the gradient; overlapping windows may add it up in another order
    np.testing.assert_allclose(gradient.asnumpy(), expected_gradient.asnumpy(), rtol=1e-6, atol=1e-6)


def test_the_imagenet_stem_trains_as_with_the_padded_pool():
    def stem_results(pool: nn.Cell | None) -> list[np.ndarray]:
        ms.set_seed(3)
        stem = Stem("imagenet", 8, create_layers("native"))
        if pool is not None:
            stem.pool = pool
        stem.set_train(True)  # BatchNorm on batch statistics, as in training
        output, input_grad, weight_grads = OutputAndGradients(stem)(x, upstream)
        return [output.asnumpy(), input_grad.asnumpy(), *(grad.asnumpy() for grad in weight_grads)]

    rng = np.random.default_rng(1)
    x = ms.Tensor(rng.standard_normal((2, 3, 20, 20)).astype(np.float32))
    upstream = ms.Tensor(rng.standard_normal((2, 8, 5, 5)).astype(np.float32))
    stem = Stem("imagenet", 8, create_layers("native"))
    assert isinstance(stem.pool, ZeroPadMaxPool2d)
    # the pool holds no parameters: checkpoints keep their names
    assert [name for name, _ in stem.parameters_and_names()] == [
        "conv.weight", "bn.moving_mean", "bn.moving_variance", "bn.gamma", "bn.beta"]
    actual, expected = stem_results(None), stem_results(padded_pool(3, 2, 1))
    assert len(actual) == len(expected) == 5
    for got, want, what in zip(actual, expected, ["output", "input gradient", "conv.weight", "bn.gamma", "bn.beta"]):
        # float sums in another order: a few ulps of the largest value; a gradient sent elsewhere is O(1)
        error, scale = np.abs(got - want).max(), max(1.0, np.abs(want).max())
        assert error <= 1e-6 * scale, f"{what}: max error {error:.3g} (scale {scale:.3g})"


def test_the_imagenet_stem_exports_no_max_pool3d_with_argmax(tmp_path):
    stem = Stem("imagenet", 4, create_layers("native"))
    stem.set_train(False)
    ms.export(stem, ms.Tensor(np.zeros((1, 3, 16, 16), np.float32)), file_name=str(tmp_path / "stem"),
              file_format="MINDIR")
    model = mind_ir_pb2.ModelProto()
    model.ParseFromString((tmp_path / "stem.mindir").read_bytes())
    ops = {node.op_type.split("::")[-1].split(":")[0] for node in model.graph.node}
    assert "MaxPool" in ops and "MaxPool3DWithArgmax" not in ops
