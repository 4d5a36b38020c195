"""The stop request behind train.py's SIGTERM/Ctrl-C handling (in-process; the real-process test is
in tests/test_faults.py)."""
import signal
import sys

import pytest

from src.utils.errors import UserError
from src.training.stop_signals import StopRequest, TrainingInterrupted
from tests.helpers.launchers import run_script, write_executable
from tests.helpers.processes import Watched, run_entry


@pytest.fixture
def sigint_as_in_a_terminal():
    """Python's own Ctrl-C handler for the test, also when the suite runs from `nohup ... &`, whose
    processes start with SIGINT ignored."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture
def sigint_ignored():
    """This process ignores SIGINT, as one started from `nohup ... &` does."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, before)


def sigint_ignored_in(status: str) -> bool:
    """Whether SIGINT is in the SigIgn mask of a /proc/PID/status text."""
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(mask, 16) & (1 << (signal.SIGINT - 1)))


PRINT_STATUS = "print(open('/proc/self/status').read())"


def test_the_helpers_start_children_with_sigint_at_its_default_when_the_tests_ignore_it(sigint_ignored, tmp_path):
    assert sigint_ignored_in(open("/proc/self/status").read())  # the check sees an ignored SIGINT
    # Each helper that starts processes: run_entry, Watched (start_entry) and run_script.
    script = tmp_path / "status.py"
    script.write_text(PRINT_STATUS)
    entry = run_entry(str(script), [])
    assert entry.returncode == 0 and not sigint_ignored_in(entry.stdout), entry.stderr
    watched = Watched([sys.executable, "-c", PRINT_STATUS])
    assert watched.finish() == 0 and not sigint_ignored_in(watched.output)
    write_executable(str(tmp_path / "status.sh"), "#!/usr/bin/env bash\ncat /proc/$$/status\n")
    result = run_script(str(tmp_path / "status.sh"), [])
    assert result.returncode == 0 and not sigint_ignored_in(result.stdout), result.stderr


def test_first_signal_is_recorded_second_one_acts_and_handlers_are_restored(sigint_as_in_a_terminal):
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
