"""The progress lines of a run: speed and ETAs without the compile time, on a clock the test moves."""
import re

import pytest

from src.training import train_log
from src.training.train_log import TrainLog


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(train_log.time, "perf_counter", lambda: now[0])
    return now


def lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_the_first_line_reports_the_compile_apart_and_later_ones_the_step_time_and_etas(clock, capsys):
    """3 epochs of 10 steps of 8 images, a line every step; the first step takes 30 s (the compile), the
    others 0.5 s; evaluating and saving take 4 s after each epoch."""
    log = TrainLog(total_epochs=3, steps_per_epoch=10, images_per_step=8, log_interval=1)
    log.start_epoch()
    for step in range(1, 11):
        clock[0] += 30.0 if step == 1 else 0.5
        log.steps(1, step, 1, 2.0, 0.1)
    clock[0] += 4.0
    log.end_epoch(1, 2.0, 0.1, "top1 50.00%")
    first, second, *rest = lines(capsys)
    assert first == "epoch 1/3 step 1/10 | loss 2.0000 | lr 0.100000 | compile+1 step 30.0 s"
    # 0.5 s a step: 16 img/s; 8 steps left in the epoch (4 s), then 2 epochs of 10 steps at 0.5 s (not yet
    # measured with their evaluation)
    assert second == ("epoch 1/3 step 2/10 | loss 2.0000 | lr 0.100000 | 16.0 img/s | 500.0 ms/step | "
                      "ETA 0:04 epoch, 0:14 run")
    assert rest[-2] == ("epoch 1/3 step 9/10 | loss 2.0000 | lr 0.100000 | 16.0 img/s | 500.0 ms/step | "
                        "ETA 0:00 epoch, 0:10 run")
    # the epoch: 38.5 s with the compile and the evaluation, its steps at 0.5 s; the next epochs take 8.5 s
    # each (38.5 s less the 29.5 s of the compile)
    assert rest[-1] == ("epoch 1/3 | loss 2.0000 | lr 0.100000 | 16.0 img/s | 500.0 ms/step | 0:38 | ETA 0:18 | "
                        "top1 50.00%")


def test_a_line_after_several_sinks_excludes_the_first_one_and_says_what_it_took(clock, capsys):
    log = TrainLog(total_epochs=2, steps_per_epoch=12, images_per_step=4, log_interval=6)
    log.start_epoch()
    for last, seconds in ((2, 20.0), (4, 2.0), (6, 2.0)):  # sinks of 2 steps; the first compiles
        clock[0] += seconds
        log.steps(1, last, 2, 1.5, 0.05)
    assert lines(capsys) == ["epoch 1/2 step 6/12 | loss 1.5000 | lr 0.050000 | 4.0 img/s | 1000.0 ms/step | "
                             "ETA 0:06 epoch, 0:18 run | compile+2 steps 20.0 s"]
    assert log.compile_seconds() == pytest.approx(18.0)


def test_the_epoch_line_times_the_steps_and_the_eta_uses_whole_epochs_without_the_compile(clock, capsys):
    log = TrainLog(total_epochs=4, steps_per_epoch=5, images_per_step=2, log_interval=0)
    for epoch in (1, 2):
        log.start_epoch()
        for step in range(1, 6):
            clock[0] += 10.0 if (epoch, step) == (1, 1) else 1.0
            log.steps(epoch, step, 1, 1.0, 0.01)
        clock[0] += 3.0  # evaluation and saving
        log.end_epoch(epoch, 1.0, 0.01)
    epoch_1, epoch_2 = lines(capsys)
    # epoch 1: 17 s in all, of which 9 s the compile; a whole epoch without it is 8 s (5 steps and 3 s)
    assert epoch_1 == "epoch 1/4 | loss 1.0000 | lr 0.010000 | 2.0 img/s | 1000.0 ms/step | 0:17 | ETA 0:24"
    assert epoch_2 == "epoch 2/4 | loss 1.0000 | lr 0.010000 | 2.0 img/s | 1000.0 ms/step | 0:08 | ETA 0:16"
    assert re.fullmatch(r"epoch (\d+)/(\d+) \| loss \S+ \| lr (\S+) \| .*", epoch_2)
