"""Stop a training run cleanly on SIGTERM or Ctrl-C (SIGINT).

A cluster scheduler sends SIGTERM before it kills a job; a user presses Ctrl-C. Either way the
first signal only records a request: the training loop sees it between two steps, where the
weights and the optimizer state are consistent, saves a checkpoint and stops. A second signal
stops at once (the default behaviour), for a run that is stuck.
"""
import signal
import sys

from src.utils.errors import UserError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(UserError):
    """The run stopped on a signal; `exit_code` follows the shell convention 128 + signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopRequest:
    """Context manager: while active, SIGTERM/SIGINT set `signum` instead of ending the process.

    Outside the main thread Python cannot install handlers; then this does nothing.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum: int, _frame) -> None:
        if self.signum is not None:
            self._restore()
            signal.raise_signal(signum)  # the second one: default behaviour, stop now
            return
        self.signum = signum
        print(f"{signal.Signals(signum).name} received: saving a checkpoint after the current step, "
              "then stopping (send it again to stop at once, without a checkpoint)", file=sys.stderr, flush=True)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __enter__(self) -> "StopRequest":
        try:
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread
            self._restore()
        return self

    def __exit__(self, *_exc) -> None:
        self._restore()
