"""Readable training logs: progress lines, one line per epoch, and metrics.csv for plotting."""
import csv
import io
import os
import time

from src.utils.atomic_file import append_durably, write_atomic

METRICS_FIELDS = ("epoch", "step", "loss", "lr", "top1", "top5", "seconds", "skipped", "loss_scale")


def format_duration(seconds: float) -> str:
    """1:02:03 style; minutes and seconds only below an hour."""
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TrainLog:
    """Prints the progress of a run. `images_per_step` counts all ranks (the global batch).

    Speeds and ETAs count the training steps only: the first sink of the run (which includes the graph
    compile) is timed apart and reported once, and the time between epochs (evaluation, saving) is not
    a step's. A progress line reads
    `epoch 2/90 step 40/390 | loss 1.2345 | lr 0.099000 | 480.0 img/s | 66.7 ms/step | ETA 0:23 epoch, 39:10 run`.
    """

    def __init__(self, total_epochs: int, steps_per_epoch: int, images_per_step: int, log_interval: int,
                 prefix: str = ""):
        self.total_epochs = total_epochs
        self.steps_per_epoch = steps_per_epoch
        self.images_per_step = images_per_step
        self.log_interval = log_interval
        self.prefix = prefix
        self.epoch_seconds: list[float] = []
        self.first_sink: tuple[int, float] | None = None  # (steps, seconds) of the run's first sink, with the compile
        self._timed = [0, 0.0]  # steps and seconds of the run after its first sink: the step time of the ETAs
        self._epoch_start = self._mark = time.perf_counter()
        self._line = [0, 0.0]   # timed steps and seconds since the last progress line
        self._epoch_timed = [0, 0.0]
        self._compile_told = False  # the first progress line says what the first sink took
        self._skipped_since_line = 0  # overflowing steps (not applied) since the last progress line

    def start_epoch(self) -> None:
        self._epoch_start = self._mark = time.perf_counter()
        self._line, self._epoch_timed = [0, 0.0], [0, 0.0]
        self._skipped_since_line = 0

    def step_seconds(self) -> float | None:
        """The mean time of a step after the first sink, or None before any was timed."""
        return self._timed[1] / self._timed[0] if self._timed[0] else None

    def compile_seconds(self) -> float | None:
        """The first sink's time beyond what its steps take at the timed rate: the graph compile."""
        step = self.step_seconds()
        if self.first_sink is None or step is None:
            return None
        return max(self.first_sink[1] - self.first_sink[0] * step, 0.0)

    def steps(self, epoch: int, step_in_epoch: int, steps: int, loss: float, lr: float,
              overflow: tuple[int, float] | None = None) -> None:
        """After `steps` more steps ending at `step_in_epoch` (a sink): a progress line when they reach or
        cross a multiple of `log_interval` inside an epoch (not at its last step). `overflow`: (steps of
        the sink skipped for overflowing gradients, the loss scale) of an overflow-checked step."""
        self._skipped_since_line += overflow[0] if overflow else 0
        now = time.perf_counter()
        seconds, self._mark = now - self._mark, now
        if self.first_sink is None:
            self.first_sink = (steps, seconds)
        else:
            for counter in (self._timed, self._line, self._epoch_timed):
                counter[0] += steps
                counter[1] += seconds
        interval = self.log_interval
        if not interval or step_in_epoch == self.steps_per_epoch or \
                step_in_epoch // interval == (step_in_epoch - steps) // interval:
            return
        fields = [f"epoch {epoch}/{self.total_epochs} step {step_in_epoch}/{self.steps_per_epoch}",
                  f"loss {loss:.4f}", f"lr {lr:.6f}"]
        if overflow:
            fields += [f"skipped {self._skipped_since_line}", f"scale {overflow[1]:g}"]
            self._skipped_since_line = 0
        if self._line[0]:
            fields += self._speed(*self._line)
            fields.append(f"ETA {format_duration(self._eta_epoch(step_in_epoch))} epoch, "
                          f"{format_duration(self._eta_run(epoch, step_in_epoch))} run")
        if not self._compile_told:  # the run's first line: its first sink is not in the speed
            self._compile_told = True
            fields.append(f"compile+{self.first_sink[0]} step{'s' if self.first_sink[0] > 1 else ''} "
                          f"{self.first_sink[1]:.1f} s")
        self._line = [0, 0.0]
        print(self.prefix + " | ".join(fields), flush=True)

    def _speed(self, steps: int, seconds: float) -> list[str]:
        seconds = max(seconds, 1e-9)
        return [f"{steps * self.images_per_step / seconds:.1f} img/s", f"{1000.0 * seconds / steps:.1f} ms/step"]

    def _eta_epoch(self, step_in_epoch: int) -> float:
        return (self.steps_per_epoch - step_in_epoch) * (self.step_seconds() or 0.0)

    def _eta_run(self, epoch: int, step_in_epoch: int) -> float:
        return self._eta_epoch(step_in_epoch) + (self.total_epochs - epoch) * self._typical_epoch()

    def _typical_epoch(self) -> float:
        """A whole epoch's wall time (with evaluation and saving): the mean of the finished ones after the
        first, else the first without its compile, else the epoch's steps at the timed rate."""
        if len(self.epoch_seconds) > 1:
            return sum(self.epoch_seconds[1:]) / (len(self.epoch_seconds) - 1)
        if self.epoch_seconds:
            return max(self.epoch_seconds[0] - (self.compile_seconds() or 0.0), 0.0)
        return self.steps_per_epoch * (self.step_seconds() or 0.0)

    def end_epoch(self, epoch: int, loss: float, lr: float, eval_text: str = "") -> float:
        """Print the epoch line; return the epoch's wall time in seconds (with the compile and evaluation).
        Its img/s and ms/step are those of the epoch's timed steps (all of them if none was timed)."""
        seconds = time.perf_counter() - self._epoch_start
        self.epoch_seconds.append(seconds)
        if self._epoch_timed[0]:
            speed = self._speed(*self._epoch_timed)
        else:  # the epoch was one sink, the compile one: its whole time
            speed = self._speed(*self.first_sink) if self.first_sink else []
        eta = (self.total_epochs - epoch) * self._typical_epoch()
        fields = [f"epoch {epoch}/{self.total_epochs}", f"loss {loss:.4f}", f"lr {lr:.6f}", *speed,
                  format_duration(seconds), f"ETA {format_duration(eta)}"]
        print(self.prefix + " | ".join(fields + ([eval_text] if eval_text else [])), flush=True)
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
        append_durably(self.path, text.getvalue().encode("utf-8"))
