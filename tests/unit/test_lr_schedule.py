import numpy as np
import pytest

from src.training.build import learning_rates
from src.training.lr_schedule import LR_DECAY_MODES, get_lr
from src.utils.config import load_config

ARGS = dict(lr_init=0.01, lr_end=1e-5, lr_max=0.1, warmup_epochs=5, total_epochs=90, steps_per_epoch=10)


@pytest.mark.parametrize("mode", LR_DECAY_MODES)
def test_boundaries_of_every_mode(mode):
    lr = get_lr(**ARGS, lr_decay_mode=mode)
    assert lr.dtype == np.float32 and len(lr) == 900
    assert lr[0] == pytest.approx(0.01)                         # first step
    assert lr[49] == pytest.approx(0.01 + 0.09 * 49 / 50)       # last warmup step
    assert lr[50] == pytest.approx(0.1)                         # end of warmup
    assert lr[-1] == pytest.approx(1e-5, rel=1e-4)              # lr_end is honoured
    assert np.all(np.diff(lr[:51]) > 0) and np.all(np.diff(lr[50:]) <= 0)
    assert lr.min() >= 1e-5 * (1 - 1e-4)


def test_mode_shapes_in_the_middle_of_decay():
    mid = 50 + 424
    p = 424 / 849  # progress through the 850 decay steps
    assert get_lr(**ARGS, lr_decay_mode="linear")[mid] == pytest.approx(0.1 + (1e-5 - 0.1) * p, rel=1e-5)
    assert get_lr(**ARGS, lr_decay_mode="cosine")[mid] == pytest.approx(1e-5 + (0.1 - 1e-5) * (1 + np.cos(np.pi * p)) / 2, rel=1e-5)
    assert get_lr(**ARGS, lr_decay_mode="poly")[mid] == pytest.approx(1e-5 + (0.1 - 1e-5) * (1 - p) ** 2, rel=1e-5)
    steps = get_lr(**ARGS, lr_decay_mode="steps")
    assert len(np.unique(steps[50:])) == 4


def _first_step_past(fraction):
    """The first step whose decay progress (steps after warmup / 849) reaches `fraction`."""
    return 50 + int(np.ceil(fraction * 849))


def test_steps_mode_drops_geometrically_at_30_60_and_80_percent_of_the_decay():
    lr = get_lr(**ARGS, lr_decay_mode="steps")
    levels = [0.1 * (1e-5 / 0.1) ** (k / 3) for k in range(4)]  # 0.1, 4.64e-3, 2.15e-4, 1e-5
    edges = [50] + [_first_step_past(f) for f in (0.3, 0.6, 0.8)] + [900]
    assert edges == [50, 305, 560, 730, 900]
    for level, start, end in zip(levels, edges, edges[1:]):
        np.testing.assert_allclose(lr[start:end], level, rtol=1e-6, err_msg=f"steps {start}..{end - 1}")


@pytest.mark.parametrize("mode, second, second_to_last", [
    ("poly", 1e-5 + (0.1 - 1e-5) * (1 - 1 / 849) ** 2, 1e-5 + (0.1 - 1e-5) * (1 / 849) ** 2),
    ("cosine", 1e-5 + (0.1 - 1e-5) * (1 + np.cos(np.pi / 849)) / 2, 1e-5 + (0.1 - 1e-5) * (1 - np.cos(np.pi / 849)) / 2),
    ("linear", 0.1 + (1e-5 - 0.1) / 849, 1e-5 + (0.1 - 1e-5) / 849),
])
def test_decay_values_next_to_its_ends(mode, second, second_to_last):
    lr = get_lr(**ARGS, lr_decay_mode=mode)
    assert lr[50] == pytest.approx(0.1, rel=1e-6) and lr[-1] == pytest.approx(1e-5, rel=1e-6)
    assert lr[51] == pytest.approx(second, rel=1e-6)
    assert lr[-2] == pytest.approx(second_to_last, rel=1e-6)


def test_start_step_continues_the_schedule():
    full = get_lr(**ARGS)
    np.testing.assert_array_equal(get_lr(**ARGS, start_step=123), full[123:])
    assert len(get_lr(**ARGS, start_step=900)) == 0


def test_no_warmup_starts_at_lr_max():
    lr = get_lr(**{**ARGS, "warmup_epochs": 0}, lr_decay_mode="cosine")
    assert lr[0] == pytest.approx(0.1) and lr[-1] == pytest.approx(1e-5, rel=1e-4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr_decay_mode="exp"), "lr_decay_mode"),
    (dict(start_step=901), "start_step"),
    (dict(total_epochs=0), "at least one epoch"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_lr(**{**ARGS, **kwargs})


@pytest.mark.parametrize("scale, factor", [("false", 1), ("true", 8)])
def test_lr_scales_with_the_device_count_only_when_asked(scale, factor):
    cfg = load_config(["--device_target", "CPU", "--lr_scale_with_devices", scale, "--epoch_size", "10",
                       "--warmup_epochs", "2"])
    one = learning_rates(cfg, rank_size=1, steps_per_epoch=5, start_step=0)
    eight = learning_rates(cfg, rank_size=8, steps_per_epoch=5, start_step=0)
    np.testing.assert_allclose(eight, one * factor, rtol=1e-6)
    assert one.max() == pytest.approx(cfg.lr_max, rel=1e-6)
