"""Run train.py / eval.py as real processes, watch their output, and hurt them on purpose."""
import os
import queue
import signal
import subprocess
import sys
import threading

from tests.helpers import REPO_ROOT

# Only a guard against a hang: a healthy tiny run takes well under a minute.
HANG_BOUND = 600


def default_sigint() -> None:
    """A `preexec_fn`: the child starts with SIGINT at its default, as from a terminal, even when the
    tests run from `nohup ... &` or another background job, whose children inherit SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_entry(script: str, args: list[str], env: dict[str, str] | None = None, **popen) -> subprocess.CompletedProcess:
    """Run REPO/script with `args` to completion; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, script), *args], cwd=REPO_ROOT,
                          env=dict(os.environ, **(env or {})), capture_output=True, text=True, timeout=HANG_BOUND,
                          **{"preexec_fn": default_sigint, **popen})


class Watched:
    """A started process whose merged stdout/stderr is read line by line in the background."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: str = REPO_ROOT):
        self.proc = subprocess.Popen(args, cwd=cwd, env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     preexec_fn=default_sigint)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str) -> str:
        """Block until a line contains `text`; fail if the process ends first or within HANG_BOUND s."""
        while True:
            try:
                line = self._queue.get(timeout=HANG_BOUND)
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"no line with {text!r} within {HANG_BOUND} s:\n{self.output[-3000:]}")
            if line is None:
                raise AssertionError(f"the process ended (code {self.proc.wait()}) before printing {text!r}:\n"
                                     f"{self.output[-3000:]}")
            self.lines.append(line)
            if text in line:
                return line

    def finish(self) -> int:
        """Wait for the exit (killing it after HANG_BOUND s) and collect the rest of the output."""
        try:
            code = self.proc.wait(timeout=HANG_BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the process did not exit within {HANG_BOUND} s:\n{self.output[-3000:]}")
        while (line := self._queue.get(timeout=HANG_BOUND)) is not None:
            self.lines.append(line)
        return code


def start_entry(script: str, args: list[str], env: dict[str, str] | None = None) -> Watched:
    return Watched([sys.executable, os.path.join(REPO_ROOT, script), *args], env)


def processes_with(marker: str) -> list[int]:
    """Pids of the processes whose command line contains `marker` (a path unique to one test)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def environment_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as handle:
        items = handle.read().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in items if b"=" in item)
