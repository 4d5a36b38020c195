"""The C++ 310 app, built on the CPU runtime, and scripts/run_infer_310.sh end to end.

The app is built once per session with `ascend310_infer/build.sh cpu` (the first build fetches
MindSpore's C++ API headers into ~/.cache/sknet50, a ~750 MB download done once).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import export
import preprocess
from tests.infer_helpers import TINY_FLAGS, save_tiny_checkpoint, write_cifar10_folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(REPO, "ascend310_infer", "out", "cpu", "main")
ENV = {**os.environ, "GLOG_v": "3", "PYTHON": sys.executable}


def run(command: list[str], cwd: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def app() -> str:
    build = run(["bash", os.path.join(REPO, "ascend310_infer", "build.sh"), "cpu"])
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return APP


@pytest.fixture(scope="module")
def tiny_mindir(tmp_path_factory) -> tuple[str, str]:
    """(MINDIR of a tiny network with batch 4, a folder of its preprocessed inputs)."""
    root = tmp_path_factory.mktemp("app")
    ckpt = save_tiny_checkpoint(str(root / "tiny.ckpt"))
    export.main(["--ckpt_file", ckpt, "--file_name", str(root / "tiny"), "--batch_size", "4", *TINY_FLAGS])
    data = write_cifar10_folder(str(root / "cifar-10-batches-bin"), 6)
    preprocess.main(["--data_path", data, "--output_path", str(root / "pre"),
                     "--mindir_path", str(root / "tiny.mindir")])
    return str(root / "tiny.mindir"), str(root / "pre" / "images")


def run_app(app: str, mindir: str, inputs: str, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return run([app, "--mindir_path", mindir, "--input0_path", inputs, "--device_type", "CPU",
                "--result_path", str(tmp_path / "result_Files"), "--time_path", str(tmp_path / "time_Result"),
                *extra])


def test_app_writes_one_result_per_input_and_the_latency(app, tiny_mindir, tmp_path):
    mindir, inputs = tiny_mindir
    result = run_app(app, mindir, inputs, tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "result_Files")) == ["batch_00000_0.bin", "batch_00001_0.bin"]
    assert os.path.getsize(tmp_path / "result_Files" / "batch_00001_0.bin") == 4 * 10 * 4
    assert "mean latency" in result.stdout
    assert "average time" in (tmp_path / "time_Result" / "test_perform_static.txt").read_text()


def test_app_fails_on_a_missing_mindir(app, tiny_mindir, tmp_path):
    result = run_app(app, str(tmp_path / "missing.mindir"), tiny_mindir[1], tmp_path)
    assert result.returncode == 1
    assert "error: cannot load MINDIR" in result.stderr and "missing.mindir" in result.stderr


def test_app_fails_on_an_empty_input_folder(app, tiny_mindir, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_app(app, tiny_mindir[0], str(tmp_path / "empty"), tmp_path)
    assert result.returncode == 1
    assert "holds no .bin files" in result.stderr


def test_app_fails_on_a_wrong_sized_input_before_inferring(app, tiny_mindir, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    np.zeros((4, 3, 32, 32), np.float32).tofile(folder / "a.bin")
    np.zeros((3, 3, 32, 32), np.float32).tofile(folder / "b.bin")
    result = run_app(app, tiny_mindir[0], str(folder), tmp_path)
    assert result.returncode == 1
    assert "b.bin has 36864 bytes" in result.stderr and "takes 49152" in result.stderr
    assert not (tmp_path / "result_Files").exists()


def test_app_refuses_ascend_on_the_cpu_runtime(app, tiny_mindir, tmp_path):
    result = run_app(app, *tiny_mindir, tmp_path, "--device_type", "Ascend310")
    assert result.returncode == 1
    assert "runs only on the CPU device" in result.stderr


@pytest.mark.parametrize("args, match", [
    (["m.mindir", "imagenet", "d", "y"], "DATASET_NAME 'imagenet' is not supported"),
    (["m.mindir", "cifar10", "d"], "expected 4 or 5 arguments"),
    (["missing.mindir", "cifar10", "d", "y"], "is not a file"),
])
def test_run_infer_310_refuses_bad_arguments(tmp_path, args, match):
    result = run(["bash", os.path.join(REPO, "scripts", "run_infer_310.sh"), *args], cwd=str(tmp_path))
    assert result.returncode == 1 and match in result.stderr
