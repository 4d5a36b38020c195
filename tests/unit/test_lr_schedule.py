import numpy as np
import pytest

from src.training.build import learning_rates, plan_learning_rates
from src.training.checkpoint_manager import RunState
from src.training.lr_schedule import LR_DECAY_MODES, get_lr
from src.utils.config import load_config
from src.utils.errors import UserError

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


# --- the position of a resume (`plan_learning_rates`) ---

def _cfg(*flags):
    return load_config(["--device_target", "CPU", "--epoch_size", "3", "--warmup_epochs", "0.5", *flags])


def _saved(batch_size, device_num, epoch_size, steps_per_epoch, next_lr, **extra):
    """The schedule facts of a checkpoint's sidecar."""
    return dict(batch_size=batch_size, device_num=device_num, epoch_size=epoch_size, steps_per_epoch=steps_per_epoch,
                next_lr=next_lr, **extra)


@pytest.mark.parametrize("epochs, warmup, warns", [(2, 5, True), (3, 3, True), (3, 2.9, False), (90, 5, False)])
def test_a_warmup_that_covers_the_run_is_a_warning_line(epochs, warmup, warns):
    cfg = load_config(["--device_target", "CPU", "--epoch_size", str(epochs), "--warmup_epochs", str(warmup)])
    notes = plan_learning_rates(cfg, 1, 10, RunState()).notes
    assert [n.startswith(f"warning: --warmup_epochs {warmup:g} covers all {epochs} epochs") for n in notes] == \
        ([True] if warns else [])


def test_a_resume_of_the_same_run_continues_at_its_step_and_says_nothing():
    cfg = _cfg("--batch_size", "8")
    full = learning_rates(cfg, 1, 10, 0)
    state = RunState(epoch=1, global_step=14, step_in_epoch=4, images_seen=14 * 8)
    plan = plan_learning_rates(cfg, 1, 10, state, _saved(8, 1, 3, 10, float(full[14])), "x.ckpt")
    np.testing.assert_array_equal(plan.lr, full[14:])
    assert plan.notes == []


@pytest.mark.parametrize("batch", [16, 4])
def test_a_resume_with_another_batch_size_continues_at_the_images_seen(batch):
    """A batch-8 run stopped after 2 of 3 epochs of 10 steps (160 images) continues at 160 / batch steps into
    the new schedule (batch 16 raised "start_step 20 is outside the schedule of 15 steps"; batch 4 resumed at
    step 20 of 60 instead of 40)."""
    cfg = _cfg("--batch_size", str(batch))
    steps = 80 // batch
    old = learning_rates(_cfg("--batch_size", "8"), 1, 10, 0)
    state = RunState(epoch=2, global_step=20, images_seen=160)
    plan = plan_learning_rates(cfg, 1, steps, state, _saved(8, 1, 3, 10, float(old[20])), "x.ckpt")
    new = learning_rates(cfg, 1, steps, 0)
    np.testing.assert_array_equal(plan.lr, new[2 * steps:])
    assert plan.notes == [f"resume: the LR schedule changes (--batch_size 8 -> {batch}, steps per epoch 10 -> "
                          f"{steps}); it continues by the 160 images seen at step {2 * steps} of {3 * steps}, and the "
                          f"LR goes from {old[20]:.6g} to {new[2 * steps]:.6g}"]
    assert state.global_step == 20  # the step count runs on: checkpoints stay ordered


def test_a_resume_on_more_devices_continues_at_the_images_seen():
    cfg = _cfg("--batch_size", "8")
    state = RunState(epoch=1, global_step=10, images_seen=80)
    plan = plan_learning_rates(cfg, 2, 5, state, _saved(8, 1, 3, 10, 0.05), "x.ckpt")
    np.testing.assert_array_equal(plan.lr, learning_rates(cfg, 2, 5, 0)[5:])
    assert "(devices 1 -> 2, steps per epoch 10 -> 5); it continues by the 80 images seen at step 5 of 15" in \
        plan.notes[0]


def test_a_longer_run_continues_the_new_schedule_and_says_the_lr_jumps():
    short, longer = _cfg("--batch_size", "8", "--epoch_size", "2"), _cfg("--batch_size", "8", "--epoch_size", "6")
    before = learning_rates(short, 1, 10, 0)[-1]
    plan = plan_learning_rates(longer, 1, 10, RunState(epoch=2, global_step=20, images_seen=160),
                               _saved(8, 1, 2, 10, float(before)), "x.ckpt")
    after = learning_rates(longer, 1, 10, 0)
    np.testing.assert_array_equal(plan.lr, after[20:])
    assert plan.notes == [f"resume: the LR schedule changes (--epoch_size 2 -> 6); it continues by the 160 images "
                          f"seen at step 20 of 60, and the LR goes from {before:.6g} to {after[20]:.6g}"]


def test_a_resume_past_the_end_of_the_new_schedule_is_a_one_line_error():
    """A run that has seen all 240 images of the new schedule (here: another data set) has no step left in it."""
    with pytest.raises(UserError, match=r"^--resume x.ckpt has seen 240 images, past the end of the new LR schedule "
                                        r"\(3 epochs of 5 steps of 16 images\); raise --epoch_size to at least 4$"):
        plan_learning_rates(_cfg("--batch_size", "16"), 1, 5, RunState(epoch=2, global_step=30, images_seen=240),
                            _saved(8, 1, 12, 10, 0.01), "x.ckpt")


def test_a_resume_inside_an_epoch_with_another_batch_is_refused():
    with pytest.raises(UserError, match="saved inside an epoch with --batch_size 8 on 2 device"):
        plan_learning_rates(_cfg("--batch_size", "16"), 1, 5, RunState(epoch=1, global_step=7, step_in_epoch=2,
                                                                       images_seen=112), _saved(8, 2, 3, 5, 0.01), "x")


def test_partial_batches_past_the_schedule_end_keep_its_last_lr():
    """100 images a rank: batch 8 trains 96 an epoch, batch 64 only 64. After 2 epochs (192 images) batch 64 is
    at step 3 of its 10 with 8 epochs of 1 step to run: the last one keeps the last LR."""
    cfg = _cfg("--batch_size", "64", "--epoch_size", "10")
    full = learning_rates(cfg, 1, 1, 0)
    plan = plan_learning_rates(cfg, 1, 1, RunState(epoch=2, global_step=24, images_seen=192),
                               _saved(8, 1, 10, 12, 0.01), "x")
    np.testing.assert_array_equal(plan.lr, np.append(full[3:], full[-1]))
    assert plan.notes[0].endswith(f"at step 3 of 10, and the LR goes from 0.01 to {full[3]:.6g}; the last step "
                                  "(partial batches) keeps its last LR")


def test_an_older_sidecar_keeps_the_step_index_and_says_so():
    cfg = _cfg("--batch_size", "8")
    state = RunState(epoch=1, global_step=10, images_seen=None)
    plan = plan_learning_rates(cfg, 1, 10, state, {"epoch": 1, "global_step": 10, "steps_per_epoch": 10}, "old.ckpt")
    np.testing.assert_array_equal(plan.lr, learning_rates(cfg, 1, 10, 10))
    assert plan.notes == ["resume: old.ckpt does not record the images seen (an older train.py wrote it); the LR "
                          "schedule continues at step 10, which is right only with the run's --batch_size, device "
                          "count and data"]
    assert state.images_seen == 80  # counted on from here


def test_an_older_sidecar_past_the_end_of_the_new_schedule_is_a_one_line_error_that_says_why():
    with pytest.raises(UserError, match=r"^--resume old.ckpt is at step 20 \(its sidecar does not record the images "
                                        r"seen, so the position is the step index\), past the end of the new LR "
                                        r"schedule \(3 epochs of 5 steps of 16 images\); raise --epoch_size to at least 5, or "
                                        r"resume with the run's --batch_size and device count$"):
        plan_learning_rates(_cfg("--batch_size", "16"), 1, 5, RunState(epoch=2, global_step=20, images_seen=None),
                            {"epoch": 2, "global_step": 20}, "old.ckpt")


def test_warmup_steps_are_rounded_not_truncated():
    # 0.3 epochs of 5 steps is 1.5 steps: 2 warm-up steps, so step 1 is halfway and step 2 is lr_max.
    lr = get_lr(0.0, 0.0, 1.0, 0.3, 2, 5, "linear")
    np.testing.assert_allclose(lr[:3], [0.0, 0.5, 1.0], rtol=1e-6)
    # 0.25 epochs of 5 is 1.25: 1 step
    np.testing.assert_allclose(get_lr(0.0, 0.0, 1.0, 0.25, 2, 5, "linear")[:2], [0.0, 1.0], rtol=1e-6)
