"""benchmark.py runs end to end and prints its table; bad flags are one-line errors.

No timing is asserted here (the numbers belong to the README); only that every phase of both
implementations ran and reported a positive number.
"""
import os
import subprocess
import sys

import pytest

import benchmark
from benchmark import METRICS
from tests.helpers import REPO_ROOT

def run_benchmark(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmark.py", *flags], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "GLOG_v": "3"})


@pytest.mark.slow
def test_benchmark_measures_both_implementations():
    proc = run_benchmark("--arch", "sknet_tiny", "--image_size", "16", "--batch_size", "2", "--warmup", "0",
                         "--steps", "1", "--conv_impl", "native,fast")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| metric | native | fast | fast / native |" in proc.stdout, proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and not line.startswith("| metric")]
    assert [row.strip("|").split("|")[0].strip() for row in rows] == [label for _, label, _ in METRICS], proc.stdout
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 4, row
        native, fast, ratio = float(cells[1]), float(cells[2]), float(cells[3].rstrip("x"))
        assert native > 0 and fast > 0 and ratio > 0, row


@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    (["--conv_impl", "im2col"], "--conv_impl"),
    (["--batch_size", "0"], "--batch_size"),
    (["--device_target", "cpu"], "--device_target"),
    (["--profile", "train", "--conv_impl", "native,fast"], "--profile"),
    (["--profile", "eval"], "--profile 'eval' is unknown"),
])
def test_bad_flags_are_one_line_errors(flags, message):
    proc = run_benchmark(*flags)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


@pytest.mark.slow
def test_profile_prints_the_kernel_time_of_a_step_by_kernel_type():
    proc = run_benchmark("--arch", "sknet_tiny", "--image_size", "16", "--batch_size", "2", "--warmup", "0",
                         "--steps", "2", "--conv_impl", "native", "--profile", "infer")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.strip("|").split("|") for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert [cell.strip() for cell in rows[0]] == ["kernel type", "kernels per step", "ms per step", "share"]
    kinds = {cells[0].strip(): (float(cells[1]), float(cells[2])) for cells in rows[1:-1]}
    assert kinds["Conv2D"][0] == 21, proc.stdout  # sknet_tiny: stem, 4 units x (two 1x1, 2 SK paths, a shortcut)
    assert rows[-1][0].strip() == "all" and float(rows[-1][2]) > 0
    assert abs(sum(ms for _, ms in kinds.values()) - float(rows[-1][2])) < 0.1 * len(kinds)


@pytest.mark.slow
def test_a_peer_python_without_torch_and_timm_is_a_one_line_error():
    proc = run_benchmark("--peer_python", sys.executable)  # the project's Python has neither
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--peer_python {sys.executable} cannot import torch and timm" in lines[0], proc.stderr


def test_the_table_puts_each_implementation_next_to_timm():
    rounds = {"native": [{"train_img_s": 10.0, "eval_peak_rss_gb": 2.0}],
              "fast": [{"train_img_s": 40.0, "eval_peak_rss_gb": 3.0}],
              "timm": [{"train_img_s": 20.0, "eval_peak_rss_gb": 1.0}]}
    lines = benchmark.format_table(["native", "fast", "timm"], rounds).splitlines()
    assert lines[0] == "| metric | native | fast | timm | fast / native | native / timm | fast / timm |"
    train = next(line for line in lines if line.startswith("| train step, img/s"))
    assert train == "| train step, img/s | 10.00 | 40.00 | 20.00 | 4.00x | 0.50x | 2.00x |"
    memory = next(line for line in lines if line.startswith("| peak RSS of eval, GB"))
    assert memory == "| peak RSS of eval, GB | 2.00 | 3.00 | 1.00 | 1.50x | 2.00x | 3.00x |"
    missing = next(line for line in lines if line.startswith("| MINDIR"))
    assert missing.endswith("| not measured | not measured | not measured | - | - | - |")


def test_ratios_are_paired_by_round_with_their_range():
    # Rounds 1 and 2 measure 0.5x (round 2 on a machine twice as fast), round 3 0.6x: the median of the
    # paired ratios is 0.5x, while the ratio of the medians (15 / 25) would be 0.6x.
    rounds = {"fast": [{"train_img_s": 10.0}, {"train_img_s": 20.0}, {"train_img_s": 15.0}],
              "timm": [{"train_img_s": 20.0}, {"train_img_s": 40.0}, {"train_img_s": 25.0}]}
    lines = benchmark.format_table(["fast", "timm"], rounds).splitlines()
    train = next(line for line in lines if line.startswith("| train step, img/s"))
    assert train == "| train step, img/s | 15.00 | 25.00 | 0.50x (0.50-0.60) |"
