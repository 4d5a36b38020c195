"""Readable training logs: progress lines, one line per epoch, and metrics.csv for plotting."""
import csv
import io
import os
import time

from src.utils.atomic_file import write_atomic

METRICS_FIELDS = ("epoch", "step", "loss", "lr", "top1", "top5", "seconds")


def format_duration(seconds: float) -> str:
    """1:02:03 style; minutes and seconds only below an hour."""
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TrainLog:
    """Prints the progress of a run. `images_per_step` counts all ranks (the global batch)."""

    def __init__(self, total_epochs: int, steps_per_epoch: int, images_per_step: int, log_interval: int,
                 prefix: str = ""):
        self.total_epochs = total_epochs
        self.steps_per_epoch = steps_per_epoch
        self.images_per_step = images_per_step
        self.log_interval = log_interval
        self.prefix = prefix
        self.epoch_seconds: list[float] = []
        self._epoch_start = self._interval_start = time.perf_counter()
        self._steps_since_line = 0

    def start_epoch(self) -> None:
        self._epoch_start = self._interval_start = time.perf_counter()
        self._steps_since_line = 0

    def steps(self, epoch: int, step_in_epoch: int, steps: int, loss: float, lr: float) -> None:
        """After `steps` more steps ending at `step_in_epoch` (a sink): a progress line when they reach or
        cross a multiple of `log_interval` inside an epoch (not at its last step)."""
        self._steps_since_line += steps
        interval = self.log_interval
        if not interval or step_in_epoch == self.steps_per_epoch or \
                step_in_epoch // interval == (step_in_epoch - steps) // interval:
            return
        now = time.perf_counter()
        speed = self._steps_since_line * self.images_per_step / max(now - self._interval_start, 1e-9)
        self._interval_start, self._steps_since_line = now, 0
        print(f"{self.prefix}epoch {epoch}/{self.total_epochs} step {step_in_epoch}/{self.steps_per_epoch} "
              f"| loss {loss:.4f} | lr {lr:.6f} | {speed:.1f} img/s", flush=True)

    def end_epoch(self, epoch: int, loss: float, lr: float, eval_text: str = "") -> float:
        """Print the epoch line; return the epoch's wall time in seconds."""
        seconds = time.perf_counter() - self._epoch_start
        self.epoch_seconds.append(seconds)
        # The first epoch includes graph compilation, so the ETA uses the later ones when it can.
        typical = self.epoch_seconds[1:] or self.epoch_seconds
        eta = sum(typical) / len(typical) * (self.total_epochs - epoch)
        speed = self.steps_per_epoch * self.images_per_step / max(seconds, 1e-9)
        print(f"{self.prefix}epoch {epoch}/{self.total_epochs} | loss {loss:.4f} | lr {lr:.6f} | "
              f"{speed:.1f} img/s | {format_duration(seconds)} | ETA {format_duration(eta)}"
              + (f" | {eval_text}" if eval_text else ""), flush=True)
        return seconds


class MetricsCSV:
    """One row per epoch in `path`, never rewritten in place: the file starts as a complete copy written
    atomically (on resume, the rows up to the resumed epoch), then each row is appended and fsynced."""

    def __init__(self, path: str, resumed_epoch: int = 0):
        self.path = path
        rows = []
        if os.path.exists(path) and resumed_epoch:
            with open(path, newline="", encoding="utf-8") as handle:
                rows = [r for r in csv.DictReader(handle) if r.get("epoch", "").isdigit()
                        and int(r["epoch"]) <= resumed_epoch]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=METRICS_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(path, text.getvalue())

    def append(self, **row) -> None:
        text = io.StringIO()
        csv.DictWriter(text, fieldnames=METRICS_FIELDS).writerow(
            {key: ("" if row.get(key) is None else row[key]) for key in METRICS_FIELDS})
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            handle.write(text.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
