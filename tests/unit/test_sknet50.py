import numpy as np
import mindspore as ms
import pytest

from src.layers.create_layers import create_layers
from src.layers.selective_kernel import SelectiveKernelConv, attention_width
from src.sknet50 import create_model, sknet50, sknet_tiny


def count(net) -> int:
    return sum(p.size for p in net.trainable_params())


@pytest.mark.parametrize("class_num, expected", [(1000, 27_479_784), (10, 25_451_274)])
def test_parameter_count_matches_timm_skresnext50(class_num, expected):
    # timm's skresnext50_32x4d; the paper quotes 27.5M for 1000 classes.
    n = count(sknet50(class_num))
    assert abs(n - expected) / expected < 0.002
    assert n == expected


def test_parameter_names_do_not_depend_on_the_conv_implementation():
    shapes = {impl: {name: p.shape for name, p in sknet_tiny(10, conv_impl=impl).parameters_and_names()}
              for impl in ("native", "fast")}
    assert shapes["native"] == shapes["fast"]


def test_fuse_width_is_max_of_c_over_r_and_l():
    assert [attention_width(c, 16, 32) for c in (128, 256, 512, 1024)] == [32, 32, 32, 64]
    unit = SelectiveKernelConv(1024, 1024, groups=32, layers=create_layers("native"))
    assert unit.attention.fc_reduce.weight.shape == (64, 1024)
    assert unit.attention.fc_select.weight.shape == (2 * 1024, 64)
    assert [p.conv.dilation for p in unit.paths] == [1, 2]
    assert [p.conv.groups for p in unit.paths] == [32, 32]


def test_sknet50_stage_layout():
    net = sknet50(10)
    stages = [net.layer1, net.layer2, net.layer3, net.layer4]
    assert [len(s) for s in stages] == [3, 4, 6, 3]
    assert [s[0].conv3.conv.out_channels for s in stages] == [256, 512, 1024, 2048]
    assert [s[0].conv1.conv.out_channels for s in stages] == [128, 256, 512, 1024]
    assert [s[0].sk_conv.paths[0].conv.stride for s in stages] == [1, 2, 2, 2]
    assert net.stem.conv.kernel_size == 7 and net.stem.conv.stride == 2 and net.stem.pool is not None


@pytest.mark.parametrize("stem_type, size", [("imagenet", 64), ("cifar", 32)])
def test_batch_of_one_keeps_its_batch_axis(stem_type, size):
    net = sknet_tiny(10, stem_type=stem_type)
    net.set_train(False)
    out = net(ms.Tensor(np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)))
    assert out.shape == (1, 10)
    assert np.isfinite(out.asnumpy()).all()


def test_cifar_stem_keeps_resolution():
    net = sknet_tiny(10, stem_type="cifar")
    assert net.stem.conv.kernel_size == 3 and net.stem.conv.stride == 1 and net.stem.pool is None


def test_unknown_variant_and_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="unknown arch"):
        create_model("sknet101", 10)
    with pytest.raises(ValueError, match="stem_type"):
        sknet_tiny(10, stem_type="imagnet")
    with pytest.raises(ValueError, match="conv_impl"):
        sknet_tiny(10, conv_impl="fastest")
