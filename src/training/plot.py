"""metrics.png: the training curves of a run (loss, learning rate, top-1/top-5 per epoch) from metrics.csv.

The trainer redraws it after every epoch; `python -m src.training.plot OUTPUT_PATH` redraws it by hand
(OUTPUT_PATH: the run's folder or its metrics.csv). matplotlib is imported only here, when a plot is
drawn, so that the start-up of train.py stays fast; it draws with the headless Agg backend.
"""
import csv
import os
import sys

from src.utils.atomic_file import atomic_path
from src.utils.errors import UserError, run_cli

PNG_NAME = "metrics.png"


def read_metrics(csv_path: str) -> dict[str, list[float | None]]:
    """The columns of metrics.csv as numbers; empty cells (no evaluation that epoch) are None."""
    try:
        with open(csv_path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError as err:
        raise UserError(f"{csv_path} does not exist; pass the --output_path of a training run") from err
    columns: dict[str, list[float | None]] = {key: [] for key in ("epoch", "loss", "lr", "top1", "top5")}
    for row in rows:
        for key, values in columns.items():
            try:
                values.append(float(row[key]) if row.get(key) not in (None, "") else None)
            except ValueError as err:
                raise UserError(f"{csv_path}: bad {key} value {row[key]!r} in epoch {row.get('epoch')}") from err
    return columns


def plot_metrics(csv_path: str, png_path: str) -> str:
    """Draw the curves of `csv_path` into `png_path` (written atomically); return `png_path`."""
    try:
        import matplotlib
    except ImportError as err:
        raise UserError("metrics.png needs matplotlib: pip install matplotlib (see requirements.txt)") from err
    matplotlib.use("Agg")  # headless: no display on a training server
    from matplotlib import pyplot

    data = read_metrics(csv_path)
    figure, (loss_axis, lr_axis, acc_axis) = pyplot.subplots(1, 3, figsize=(13, 3.6))
    try:
        _line(loss_axis, data["epoch"], data["loss"], "train loss", "loss")
        _line(lr_axis, data["epoch"], data["lr"], "learning rate (last step)", "lr")
        _line(acc_axis, data["epoch"], data["top1"], "top-1", "eval accuracy")
        _line(acc_axis, data["epoch"], data["top5"], "top-5", "eval accuracy")
        acc_axis.set_ylim(0, 1)
        figure.suptitle(os.path.dirname(os.path.abspath(csv_path)), fontsize=8)
        figure.tight_layout()
        with atomic_path(png_path, suffix=".png") as tmp:
            figure.savefig(tmp, dpi=90, format="png")
    finally:
        pyplot.close(figure)
    return png_path


def _line(axis, epochs, values, label: str, title: str) -> None:
    points = [(e, v) for e, v in zip(epochs, values) if e is not None and v is not None]
    if points:
        axis.plot(*zip(*points), marker="o", markersize=3, label=label)
        axis.legend(fontsize=8)
    axis.set_title(title, fontsize=10)
    axis.set_xlabel("epoch")
    axis.grid(alpha=0.3)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        raise UserError("usage: python -m src.training.plot OUTPUT_PATH (a run's folder or its metrics.csv)")
    path = argv[0]
    if not os.path.exists(path):
        raise UserError(f"{path} does not exist; pass a training run's --output_path or its metrics.csv")
    csv_path = os.path.join(path, "metrics.csv") if os.path.isdir(path) else path
    print(f"wrote {plot_metrics(csv_path, os.path.join(os.path.dirname(os.path.abspath(csv_path)), PNG_NAME))}")
    return 0


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
