"""The stop request behind train.py's SIGTERM/Ctrl-C handling (in-process, and in small child processes for
what ends a process; the train.py tests are in tests/e2e/test_faults.py)."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from src.utils.errors import UserError
from src.training.stop_signals import STOP_SIGNALS, StopRequest, TrainingInterrupted
from tests.helpers.launchers import run_script, write_executable
from tests.helpers.processes import Watched, run_entry


def _signal_and_wait(stop: StopRequest, signum: int) -> None:
    os.kill(os.getpid(), signum)  # process-directed, as a signal from outside (or MindSpore's kill) is
    deadline = time.monotonic() + 10
    while stop.signum is None and time.monotonic() < deadline:
        time.sleep(0.01)


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


def test_the_first_signal_is_recorded_and_everything_is_restored_after():
    before = signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with StopRequest() as stop:
        assert stop.signum is None
        stop.check("here")  # nothing came: no stop
        _signal_and_wait(stop, signal.SIGINT)
        assert stop.signum == signal.SIGINT and stop.name == "SIGINT"
        with pytest.raises(TrainingInterrupted, match="stopped by SIGINT here; nothing was saved") as caught:
            stop.check("here")
        assert caught.value.exit_code == 130
    assert (signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, [])) == before


def test_sigterm_is_recorded_and_the_exit_code_follows_the_shell_convention():
    with StopRequest() as stop:
        _signal_and_wait(stop, signal.SIGTERM)
        assert stop.signum == signal.SIGTERM
    err = TrainingInterrupted("stopped", stop.signum)
    assert isinstance(err, UserError) and err.exit_code == 143


def test_threads_started_meanwhile_never_take_the_signals():
    """MindSpore's threads (and the SIGINT handler it installs on every graph run) never see them."""
    seen = []
    with StopRequest():
        thread = threading.Thread(target=lambda: seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        thread.start()
        thread.join()
    assert set(STOP_SIGNALS) <= seen[0]


SECOND_SIGNAL = """
import os, signal, sys, time
from src.training.stop_signals import StopRequest
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job inherits it: the request takes it over anyway
with StopRequest() as stop:
    pid = os.fork()
    if pid == 0:  # a forked data worker is stopped by signals as usual
        os._exit(0 if not {signal.SIGINT, signal.SIGTERM} & signal.pthread_sigmask(signal.SIG_BLOCK, []) else 3)
    assert os.waitpid(pid, 0)[1] == 0
    os.kill(os.getpid(), signal.SIGINT)
    while stop.signum is None:
        time.sleep(0.01)
    print("first recorded", flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)
sys.exit(5)
"""


def test_a_second_signal_ends_the_process_at_once_with_130():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", SECOND_SIGNAL], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert proc.stdout == "first recorded\n"
    assert proc.stderr.splitlines()[-1] == "SIGINT received again: stopping at once, without a checkpoint"
