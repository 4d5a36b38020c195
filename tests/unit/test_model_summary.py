import pytest

from src.model_summary import multiply_adds, parameter_count, summary_line
from src.sknet50 import sknet50, sknet_tiny


def test_sknet50_at_224_matches_the_paper():
    # Paper, Table 2: 27.5M parameters and 4.47 GFLOPs (multiply-adds; timm: 4.47 GMACs) with 1000 classes.
    net = sknet50(1000, stem_type="imagenet")
    assert parameter_count(net) == 27_479_784
    assert multiply_adds(net, 224) / 1e9 == pytest.approx(4.47, rel=0.003)


def test_the_stages_see_the_same_maps_behind_either_stem():
    # The ImageNet stem takes 224 to 56 pixels, the CIFAR stem keeps 56: everything after the stem costs the same.
    imagenet, cifar = sknet_tiny(10, stem_type="imagenet"), sknet_tiny(10, stem_type="cifar")
    stem_imagenet = 7 * 7 * 3 * 64 * 112 * 112  # stem width 64
    stem_cifar = 3 * 3 * 3 * 64 * 56 * 56
    assert multiply_adds(imagenet, 224) - stem_imagenet == multiply_adds(cifar, 56) - stem_cifar > 0


def test_summary_line_names_both_figures():
    line = summary_line(sknet_tiny(10, stem_type="cifar"), "sknet_tiny", 32)
    assert line.startswith("model sknet_tiny: 233,450 parameters, ") and "multiply-adds" in line and "32x32" in line
