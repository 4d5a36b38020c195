"""Several steps per host round trip (src/training/sunk_steps.py): the sink size, the device counters,
the EMA inside the step, the progress lines, and the two runners (host loop; `ms.data_sink`, faked)."""
from types import SimpleNamespace

import mindspore as ms
import mindspore.dataset as ds
import numpy as np
import pytest
from mindspore import nn

from src.training.ema import WeightsEMA
from src.training.sunk_steps import EpochRunner, SinkTotals, SunkSteps, check_finite, host_sinks, steps_text
from src.training.train_log import TrainLog
from src.training.train_step import SCALE_FACTOR, SCALE_WINDOW, OverflowCheckedStep, TrainingDiverged
from src.utils.device import resolve_sink_size
from src.utils.errors import UserError


@pytest.mark.parametrize("device_target, steps_per_epoch, expected", [
    ("CPU", 1560, 1), ("GPU", 1560, 40), ("Ascend", 390, 39), ("GPU", 100, 50), ("Ascend", 97, 1), ("GPU", 7, 7)])
def test_auto_is_one_on_the_cpu_and_the_largest_divisor_up_to_50_on_a_chip(device_target, steps_per_epoch, expected):
    assert resolve_sink_size("auto", device_target, steps_per_epoch) == expected


def test_an_explicit_size_must_divide_the_epoch():
    assert resolve_sink_size("5", "CPU", 10) == 5
    with pytest.raises(UserError) as caught:
        resolve_sink_size("5", "GPU", 12)
    assert str(caught.value) == "--sink_size 5 does not divide the 12 steps of an epoch; use auto or one of 1, 2, 3, " \
                                "4, 6, 12"


def test_steps_text_names_one_step_or_a_range():
    assert steps_text(2, 3, 3, 10) == "epoch 2 step 3/10"
    assert steps_text(2, 1, 5, 10) == "epoch 2 steps 1-5/10"


def dense_step(lr: float = 0.0):
    """A plain (CPU, fixed-scale) train cell over a tiny dense network, as `TrainStep` would hold it."""
    ms.set_seed(1)
    net = nn.Dense(3, 2)
    cell = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), nn.SGD(net.trainable_params(), lr))
    return net, SimpleNamespace(cell=cell, checked=False, dynamic=False, loss_scale=1.0)


def batch(seed: int, nan: bool = False):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((4, 3)).astype(np.float32)
    if nan:
        images[0, 0] = np.nan
    return ms.Tensor(images), ms.Tensor(rng.standard_normal((4, 2)).astype(np.float32))


def test_the_counters_add_up_the_steps_of_one_sink_and_start_again_after_the_read():
    net, step = dense_step(lr=0.0)  # the weights never move: each loss can be recomputed
    loss_of = nn.WithLossCell(net, nn.MSELoss())
    sunk = SunkSteps(step, None)
    losses = []
    for seed in (1, 2, 3):
        sunk(*batch(seed))
        losses.append(float(loss_of(*batch(seed)).asnumpy()))
    totals = sunk.read_totals()
    assert (totals.applied, totals.skipped, totals.nonfinite, totals.loss_scale) == (3, 0, 0, 1.0)
    assert totals.loss == pytest.approx(np.mean(losses), rel=1e-6)
    sunk(*batch(4, nan=True))
    totals = sunk.read_totals()
    assert (totals.applied, totals.nonfinite, np.isnan(totals.loss)) == (1, 1, True)


def test_the_ema_moves_after_the_optimizer_step_in_the_same_graph():
    net, step = dense_step(lr=0.5)
    start = [p.asnumpy().copy() for p in net.get_parameters()]
    ema = WeightsEMA(net, 0.9, steps_done=1000)
    sunk = SunkSteps(step, ema)
    sunk(*batch(1))
    for average, before, param in zip(ema.averages, start, net.get_parameters()):
        assert not np.allclose(param.asnumpy(), before)  # the step moved the weights...
        # ...and the average moved towards the weights after it
        np.testing.assert_allclose(average.asnumpy(), 0.9 * before + 0.1 * param.asnumpy(), rtol=1e-6, atol=1e-7)
    assert int(ema.update.steps.asnumpy()) == 1001


def dynamic_sunk_steps(loss_scale: float, scale_window: int = SCALE_WINDOW) -> SunkSteps:
    """The overflow-checked step of GPU/Ascend with a dynamic scale (the CPU's isfinite check in place of the
    device's float status) over a tiny network with BatchNorm."""
    ms.set_seed(1)
    net = nn.SequentialCell([nn.Dense(3, 2), nn.BatchNorm1d(2)])
    optimizer = nn.SGD(net.trainable_params(), 0.1)
    scale = nn.DynamicLossScaleUpdateCell(loss_scale, SCALE_FACTOR, scale_window)
    cell = OverflowCheckedStep(nn.WithLossCell(net, nn.MSELoss()), optimizer, scale, "CPU")
    sunk = SunkSteps(SimpleNamespace(cell=cell, checked=True, dynamic=True, loss_scale=loss_scale), None)
    sunk.set_train(True)
    return sunk


def test_a_skipped_step_is_counted_apart_with_the_scale_after_it():
    sunk = dynamic_sunk_steps(1024.0)
    for seed, nan in ((1, False), (2, True), (3, False)):
        sunk(*batch(seed, nan))
    totals = sunk.read_totals()
    assert (totals.applied, totals.skipped, totals.nonfinite, totals.loss_scale) == (2, 1, 0, 512.0)
    assert np.isfinite(totals.loss) and (totals.at_floor, totals.longest_run) == (0, 1)


def run_sink(sunk: SunkSteps, overflows: str):
    """One sink of steps, "x" overflowing (a NaN batch) and "." good; its totals."""
    for seed, mark in enumerate(overflows):
        sunk(*batch(seed, nan=mark == "x"))
    return sunk.read_totals()


def test_the_dynamic_scale_halves_grows_back_and_counts_overflows_in_a_row_across_sinks():
    sunk = dynamic_sunk_steps(4.0, scale_window=2)
    first = run_sink(sunk, ".x")
    assert (first.skipped, first.longest_run, first.at_floor, first.loss_scale) == (1, 1, 0, 2.0)
    second = run_sink(sunk, "x..")  # the run of overflows goes on across the read; then 2 good steps grow it back
    assert (second.skipped, second.longest_run, second.at_floor, second.loss_scale) == (1, 2, 0, 2.0)
    check_finite(second, "epoch 1 steps 3-5/9", None, max_skipped_steps=2)
    with pytest.raises(TrainingDiverged, match=r"^2 steps in a row overflowed by epoch 1 steps 3-5/9 \(more than "
                                               r"--max_skipped_steps 1; not applied\) at the loss scale 2 "):
        check_finite(second, "epoch 1 steps 3-5/9", None, max_skipped_steps=1)
    third = run_sink(sunk, "xx")  # 2 -> 1, then an overflow at 1: no smaller scale can help
    assert (third.skipped, third.longest_run, third.at_floor, third.loss_scale) == (2, 2, 1, 1.0)
    with pytest.raises(TrainingDiverged, match="^the loss scale collapsed at epoch 1 steps 6-7/9: the gradients "
                                               "overflowed at a dynamic loss scale of 1"):
        check_finite(third, "epoch 1 steps 6-7/9", None, max_skipped_steps=100)


def test_an_overflow_with_max_skipped_steps_0_stops_at_once_and_a_finite_sink_passes():
    one = SinkTotals(loss=2.5, applied=4, skipped=1, nonfinite=0, loss_scale=1024.0, at_floor=0, longest_run=1)
    check_finite(one, "epoch 1 steps 1-5/5", None, max_skipped_steps=1)
    with pytest.raises(TrainingDiverged, match="^1 step in a row overflowed"):
        check_finite(one, "epoch 1 steps 1-5/5", None, max_skipped_steps=0)
    check_finite(SinkTotals(2.5, 5, 0, 0, 1.0), "epoch 1 steps 1-5/5", None, max_skipped_steps=0)


def test_a_progress_line_when_a_sink_reaches_or_crosses_the_interval(capsys):
    log = TrainLog(total_epochs=1, steps_per_epoch=12, images_per_step=4, log_interval=3)
    log.start_epoch()
    for last in range(2, 13, 2):
        log.steps(1, last, 2, 0.5, 0.1)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in lines] == ["epoch 1/1 step 4/12", "epoch 1/1 step 6/12",
                                                        "epoch 1/1 step 10/12"]
    assert "skipped" not in lines[0]  # the CPU's plain step has no overflow check


def test_the_progress_line_counts_the_skipped_steps_since_the_last_line(capsys):
    log = TrainLog(total_epochs=1, steps_per_epoch=12, images_per_step=4, log_interval=4)
    log.start_epoch()
    for last, skipped, scale in ((2, 1, 512.0), (4, 1, 256.0), (6, 0, 256.0), (8, 0, 256.0)):
        log.steps(1, last, 2, 0.5, 0.1, (skipped, scale))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[3:5] for line in lines] == [["skipped 2", "scale 256"], ["skipped 0", "scale 256"]]


def numbers(count: int, batch_size: int = 1):
    return ds.NumpySlicesDataset({"x": np.arange(count, dtype=np.float32), "y": np.arange(count, dtype=np.int32)},
                                 shuffle=False).batch(batch_size)


def test_the_host_loop_runs_every_step_and_ends_a_sink_every_n():
    ran = []
    run_step = lambda epoch, step, images, labels: ran.append((epoch, step, int(images.asnumpy()[0])))  # noqa: E731
    batches = numbers(6).create_tuple_iterator(num_epochs=1)
    assert list(host_sinks(batches, run_step, 3, 0, 3)) == [(1, 3), (4, 6)]
    assert ran == [(3, step, step - 1) for step in range(1, 7)]
    ran.clear()
    batches = numbers(6).create_tuple_iterator(num_epochs=1)
    assert list(host_sinks(batches, run_step, 1, 4, 1)) == [(5, 5), (6, 6)]
    assert ran == [(1, 5, 4), (1, 6, 5)]


def test_gpu_and_ascend_create_one_data_sink_and_a_resumed_epoch_runs_from_the_host(monkeypatch):
    created, sinks, ran = [], [], []

    def fake_data_sink(fn, dataset, sink_size=1, jit_config=None):
        created.append((fn, dataset, sink_size, jit_config))
        return lambda: sinks.append(sink_size)

    monkeypatch.setattr(ms, "data_sink", fake_data_sink)
    cell, dataset = object(), numbers(6)
    run_step = lambda epoch, step, images, labels: ran.append((epoch, step))  # noqa: E731
    runner = EpochRunner(cell, run_step, dataset, 3, 3, "Ascend", rebuild_dataset=lambda: numbers(6))
    assert list(runner.epoch(1, 4)) == [(5, 5), (6, 6)]  # data_sink cannot skip batches
    assert ran == [(1, 5), (1, 6)] and not sinks
    for epoch in (2, 3):
        assert list(runner.epoch(epoch, 0)) == [(1, 3), (4, 6)]
    assert sinks == [3, 3, 3, 3] and len(ran) == 2
    assert len(created) == 1
    fn, sunk_dataset, sink_size, jit_config = created[0]
    assert (fn, sunk_dataset, sink_size) == (cell, dataset, 3) and isinstance(jit_config, ms.JitConfig)
