"""The C++ 310 app, built on the CPU runtime, and scripts/run_infer_310.sh end to end.

The app is built once per session with `ascend310_infer/build.sh cpu` (the first build fetches
MindSpore's C++ API headers into ~/.cache/sknet50, a ~750 MB download done once).
"""
import json
import os
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

import export
import preprocess
from tests.helpers import REPO_ROOT
from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.infer import TINY_FLAGS, save_tiny_checkpoint

# Every test here builds or runs the C++ app, or exports a network first.
pytestmark = pytest.mark.slow

REPO = REPO_ROOT
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
    data = write_cifar_layout(str(root / "data"), per_train_file=1, test_count=6)
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
    graph = nn.GraphCell(ms.load(mindir))
    for name in ("batch_00000", "batch_00001"):
        images = np.fromfile(os.path.join(inputs, f"{name}.bin"), np.float32).reshape(4, 3, 32, 32)
        logits = np.fromfile(tmp_path / "result_Files" / f"{name}_0.bin", np.float32)
        np.testing.assert_array_equal(logits.reshape(4, 10), graph(ms.Tensor(images)).asnumpy())
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



def test_run_infer_310_stops_at_the_failing_stage_and_shows_its_log(tiny_mindir, tmp_path):
    (tmp_path / "no_data").mkdir()
    result = run(["bash", os.path.join(REPO, "scripts", "run_infer_310.sh"), tiny_mindir[0], "cifar10", "no_data", "y"],
                 cwd=str(tmp_path), env={**ENV, "DEVICE_TARGET": "CPU", "OUTPUT_DIR": "out"})
    assert result.returncode == 1
    assert "stage 'preprocess' failed" in result.stderr and "missing test_batch.bin" in result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["preprocess.log"]  # nothing ran after it

def app_predictions(result_dir: str, meta: dict) -> list[int]:
    """Each real image's top-1 class from the app's result files, in dataset order."""
    classes = len(meta["class_names"])
    logits = np.concatenate([np.fromfile(os.path.join(result_dir, f"{name[:-4]}_0.bin"), np.float32)
                             .reshape(meta["batch_size"], classes) for name in meta["files"]])
    return [int(p) for p in logits[:meta["image_count"]].argmax(axis=1)]


def test_run_infer_310_predicts_what_eval_py_predicts(app, tmp_path):
    data = write_cifar_layout(str(tmp_path / "data"), per_train_file=32, test_count=27)
    # 30 steps: enough for varied predictions (measured: 70% top-1), so that equal predictions mean something.
    train = run([sys.executable, os.path.join(REPO, "train.py"), *TINY_FLAGS, "--data_path", data,
                 "--output_path", str(tmp_path / "run"), "--epoch_size", "3", "--batch_size", "16",
                 "--warmup_epochs", "0", "--eval_interval", "0", "--log_interval", "0"], cwd=str(tmp_path))
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    ckpt = str(tmp_path / "run" / "sknet_tiny-3_10.ckpt")
    # Batch 8 over 27 images: the last batch carries 5 padded images.
    export.main(["--ckpt_file", ckpt, "--file_name", str(tmp_path / "tiny"), "--batch_size", "8", *TINY_FLAGS])

    # From another directory, with relative paths: the script must resolve them itself.
    infer = run(["bash", os.path.join(REPO, "scripts", "run_infer_310.sh"), "tiny.mindir", "cifar10",
                 os.path.relpath(data, tmp_path), "y"], cwd=str(tmp_path),
                env={**ENV, "DEVICE_TARGET": "CPU", "OUTPUT_DIR": "infer"})
    assert infer.returncode == 0, infer.stdout[-2000:] + infer.stderr[-2000:]
    evaluation = run([sys.executable, os.path.join(REPO, "eval.py"), *TINY_FLAGS, "--data_path", data,
                      "--checkpoint_path", ckpt, "--result_json", str(tmp_path / "eval.json")], cwd=str(tmp_path))
    assert evaluation.returncode == 0, evaluation.stdout[-2000:] + evaluation.stderr[-2000:]

    reference = json.loads((tmp_path / "eval.json").read_text())["results"][0]
    meta = json.loads((tmp_path / "infer" / "preprocess_Result" / "meta.json").read_text())
    predictions = app_predictions(str(tmp_path / "infer" / "result_Files"), meta)
    assert len(predictions) == reference["images"] == 27
    assert len(set(reference["predictions"])) >= 4, "the trained network predicts too few classes to compare"
    assert predictions == reference["predictions"]
    correct = round(reference["top1"] * 27)
    assert f"top-1 accuracy: {correct / 27:.4f} ({correct}/27)" in (tmp_path / "infer" / "acc.log").read_text()
    assert (tmp_path / "infer" / "acc.log").read_text().strip() in infer.stdout
