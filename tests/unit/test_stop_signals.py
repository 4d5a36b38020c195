"""The stop request behind train.py's SIGTERM/Ctrl-C handling (in-process; the real-process test is
in tests/test_faults.py)."""
import signal

import pytest

from src.utils.errors import UserError
from src.training.stop_signals import StopRequest, TrainingInterrupted


def test_first_signal_is_recorded_second_one_acts_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGINT)
    with StopRequest() as stop:
        assert stop.signum is None
        signal.raise_signal(signal.SIGINT)
        assert stop.signum == signal.SIGINT and stop.name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):  # the second Ctrl-C: Python's default, at once
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_sigterm_is_recorded_and_the_exit_code_follows_the_shell_convention():
    with StopRequest() as stop:
        signal.raise_signal(signal.SIGTERM)
        assert stop.signum == signal.SIGTERM
    err = TrainingInterrupted("stopped", stop.signum)
    assert isinstance(err, UserError) and err.exit_code == 143
