"""Stop a training run cleanly on SIGTERM or Ctrl-C (SIGINT).

A cluster scheduler sends SIGTERM before it kills a job; a user presses Ctrl-C. Either way the
first signal only records a request: the training loop sees it at its next safe point (between two
sinks of steps, after an evaluation or a save, before training starts), saves a checkpoint where one
is due and stops. A second signal stops at once, without a checkpoint.

The signals are taken by a thread of our own, not by a handler: train.py starts the watch before
MindSpore loads, so both signals are blocked in every thread MindSpore starts, and only our thread
receives them (`sigtimedwait`). (In a process whose other threads started earlier, the same request
is recorded by a Python handler instead.) MindSpore installs its own SIGINT handler on every graph run, which
turns Ctrl-C into SIGTERM; with the signals blocked it never runs, so Ctrl-C stays Ctrl-C (exit 130),
and a Ctrl-C during its import or a compile raises nothing inside MindSpore.
"""
import os
import signal
import sys
import threading

from src.utils.errors import UserError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_POLL_SECONDS = 0.2  # how often the watching thread looks whether it should end


class TrainingInterrupted(UserError):
    """The run stopped on a signal; `exit_code` follows the shell convention 128 + signal number.

    A rank under msrun exits 0 instead: msrun answers a non-zero exit by SIGKILLing every other rank
    and printing a traceback, and the ranks stop together anyway (`StopRequest.agreed`); the launcher,
    which delivered the signal, reports 128 + signal for the job."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 0 if os.environ.get("MS_ROLE") == "MS_WORKER" else 128 + signum


class StopRequest:
    """Context manager: while active, SIGTERM/SIGINT set `signum` instead of ending the process; a second
    one ends it at once with exit code 128 + signal.

    Outside the main thread it does nothing (the caller's thread cannot own the process's signals).
    """

    def __init__(self):
        self.signum: int | None = None
        self._watching = threading.Event()
        self._thread: threading.Thread | None = None
        self._mask: set[int] | None = None
        self._previous: dict[int, object] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def check(self, where: str) -> None:
        """At a safe point where nothing is due to be saved: stop now if a signal came."""
        if self.signum:
            raise TrainingInterrupted(f"stopped by {self.name} {where}; nothing was saved", self.signum)

    def agreed(self, rank_size: int) -> bool:
        """Whether any rank was asked to stop: a collective that every rank calls at the same points, so
        that all of them stop after the same step (and none exits while rank 0 still saves)."""
        if rank_size > 1:
            signum = _max_over_ranks(self.signum or 0)
            if signum and not self.signum:
                self.signum = signal.Signals(signum)
        return bool(self.signum)

    def _handle(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            print(f"{name} received again: stopping at once, without a checkpoint", file=sys.stderr, flush=True)
            os._exit(128 + signum)  # no interpreter shutdown: MindSpore's threads may be mid-call
        self.signum = signum
        print(f"{name} received: stopping at the next safe point, with a checkpoint once training has started "
              "(send it again to stop at once, without a checkpoint)", file=sys.stderr, flush=True)

    def _watch(self) -> None:
        while self._watching.is_set():
            info = signal.sigtimedwait(STOP_SIGNALS, _POLL_SECONDS)
            if info is not None:
                self._handle(info.si_signo)

    def _unblock_in_child(self) -> None:
        if self._mask is not None:  # a forked child (a data worker) is stopped by signals as usual
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in STOP_SIGNALS:
            # Not SIG_IGN, so that a blocked signal stays pending for the thread; the handler itself runs only
            # when a thread that existed before (and does not block the signals) takes one.
            self._previous[signum] = signal.signal(signum, lambda signum, _frame: self._handle(signum))
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        os.register_at_fork(after_in_child=self._unblock_in_child)
        self._watching.set()
        self._thread = threading.Thread(target=self._watch, name="stop-signals", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        if self._thread is None:
            return
        self._watching.clear()
        self._thread.join()
        for signum, handler in self._previous.items():
            if handler is not None:  # None: installed outside Python; it stays as it is
                signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)  # one that came meanwhile now acts as before
        self._mask, self._thread, self._previous = None, None, {}


_GATHER: list = []  # the compiled AllGather cell, built on first use


def _max_over_ranks(value: int) -> int:
    """The largest `value` over all ranks (gathered in a compiled cell, as the training step)."""
    import mindspore as ms  # here: this module loads before MindSpore does

    from src.training.resume_agreement import _AllGather
    if not _GATHER:
        _GATHER.append(_AllGather())
    return int(_GATHER[0](ms.Tensor([value], ms.int32)).asnumpy().max())
