"""metrics.png from metrics.csv: drawn atomically, redrawn by `python -m src.training.plot`."""
import os
import subprocess
import sys

import pytest

from src.training.plot import PNG_NAME, main, plot_metrics, read_metrics
from src.training.train_log import MetricsCSV
from src.utils.errors import UserError
from tests.helpers import REPO_ROOT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_metrics(folder, epochs=3, with_eval=True):
    metrics = MetricsCSV(os.path.join(folder, "metrics.csv"))
    for epoch in range(1, epochs + 1):
        metrics.append(epoch=epoch, step=epoch * 10, loss=f"{2.0 / epoch:.6f}", lr=f"{0.1 / epoch:.8f}",
                       top1=f"{0.3 * epoch / epochs:.6f}" if with_eval and epoch != 2 else None,
                       top5=f"{0.9:.6f}" if with_eval and epoch != 2 else None, seconds="1.00")
    return metrics.path


def test_columns_are_read_as_numbers_with_gaps_for_epochs_without_eval(tmp_path):
    data = read_metrics(write_metrics(str(tmp_path)))
    assert data["epoch"] == [1.0, 2.0, 3.0] and data["loss"] == [2.0, 1.0, 0.666667]
    assert data["top1"] == [0.1, None, 0.3]


def test_png_is_written_atomically_next_to_the_csv(tmp_path):
    csv_path = write_metrics(str(tmp_path))
    png = plot_metrics(csv_path, str(tmp_path / PNG_NAME))
    with open(png, "rb") as handle:
        assert handle.read(8) == PNG_SIGNATURE
    assert os.path.getsize(png) > 5000
    assert sorted(os.listdir(tmp_path)) == ["metrics.csv", PNG_NAME]  # no temporary file left behind


def test_a_run_without_evaluation_still_gets_its_loss_curve(tmp_path):
    png = plot_metrics(write_metrics(str(tmp_path), with_eval=False), str(tmp_path / PNG_NAME))
    assert open(png, "rb").read(8) == PNG_SIGNATURE


def test_command_line_redraws_from_a_folder_and_names_a_missing_csv(tmp_path):
    write_metrics(str(tmp_path))
    assert main([str(tmp_path)]) == 0 and (tmp_path / PNG_NAME).exists()
    with pytest.raises(UserError, match="nope does not exist"):
        main([str(tmp_path / "nope")])
    os.remove(tmp_path / "metrics.csv")
    with pytest.raises(UserError, match="metrics.csv does not exist"):
        main([str(tmp_path)])
    with pytest.raises(UserError, match="usage: python -m src.training.plot OUTPUT_PATH"):
        main([])


def test_importing_the_trainer_does_not_import_matplotlib():
    code = "import sys, src.training.trainer; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "False", result.stderr
