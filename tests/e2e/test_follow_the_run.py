"""eval.py, export.py and preprocess.py follow the run they read: after a tiny CIFAR-stem run at 32x32, none of
them needs the run's flags repeated, and a flag that contradicts the run is a one-line error."""
import contextlib
import io
import json
import os

import pytest

import export
import preprocess
from src.evaluation.eval_checkpoints import evaluate_checkpoints
from src.utils.config import load_config
from src.utils.device import Placement
from src.utils.errors import UserError
from src.utils.mindir import mindir_image_input
from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.tiny_runs import TRAIN, run
from tests.helpers.tiny_runs import TRAIN_STEPS as STEPS

pytestmark = pytest.mark.slow
TAKEN = "arch sknet_tiny, stem_type cifar, class_num 10, image_size 32"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("data")), per_train_file=32, test_count=20)


@pytest.fixture(scope="module")
def tiny_run(data, tmp_path_factory):
    """train.py --arch sknet_tiny --stem_type cifar --image_size 32, two epochs, evaluated each (best.ckpt)."""
    out = str(tmp_path_factory.mktemp("run"))
    proc = run("train.py", *TRAIN, "--data_path", data, "--output_path", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """export.py with only the checkpoint: the run's network at the run's 32x32, batch 2; (MINDIR, its output)."""
    path = str(tmp_path_factory.mktemp("export") / "tiny")
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        export.main(["--ckpt_file", os.path.join(tiny_run, f"sknet_tiny-2_{STEPS}.ckpt"), "--file_name", path,
                     "--batch_size", "2", "--device_target", "CPU"])
    return path + ".mindir", printed.getvalue()


def test_eval_of_a_run_folder_needs_no_repeated_flags(tiny_run, data, tmp_path):
    result_json = str(tmp_path / "results.json")
    proc = run("eval.py", "--device_target", "CPU", "--data_path", data, "--checkpoint_path", tiny_run,
               "--result_json", result_json)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"settings: {TAKEN} (from {os.path.join(tiny_run, 'config.yaml')})" in out
    with open(os.path.join(tiny_run, "best.ckpt.json")) as handle:
        best = json.load(handle)
    twin = f"sknet_tiny-{best['epoch']}_{STEPS}.ckpt"
    best_name = f"best.ckpt (epoch {best['epoch']}, step {best['global_step']})"
    # Natural order, best.ckpt right after the epoch it holds and evaluated once, the best line naming the epoch.
    lines = [line.split(":")[0] for line in out.splitlines() if ": top1" in line or "not evaluated again" in line]
    expected = [f"sknet_tiny-1_{STEPS}.ckpt", f"sknet_tiny-2_{STEPS}.ckpt"]
    expected.insert(best["epoch"], best_name)
    assert lines == expected, out
    assert f"{best_name}: the weights of {twin}, not evaluated again" in out
    assert f"best: {twin} with top1" in out
    assert [os.path.basename(r["checkpoint"]) for r in json.load(open(result_json))["results"]] == expected[:1] + [
        name for name in expected[1:] if name != best_name]


def test_a_flag_that_contradicts_the_run_is_a_one_line_error(tiny_run, data):
    proc = run("eval.py", "--device_target", "CPU", "--data_path", data, "--checkpoint_path", tiny_run,
               "--stem_type", "imagenet")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"error: --stem_type imagenet contradicts {os.path.join(tiny_run, 'config.yaml')}, "
                                   "which holds stem_type cifar; drop it, or pass a run or file with stem_type imagenet")
    ckpt = os.path.join(tiny_run, f"sknet_tiny-1_{STEPS}.ckpt")
    with pytest.raises(UserError, match=f"^--image_size 64 contradicts the sidecar of {ckpt}, which holds image_size 32"):
        export.main(["--ckpt_file", ckpt, "--image_size", "64", "--device_target", "CPU", "--file_name", "x"])


def test_export_takes_the_run_and_eval_takes_the_mindirs_size(tiny_run, exported, data, tmp_path, capsys):
    exported, printed = exported
    assert mindir_image_input(exported) == (2, 32)
    assert f"settings: {TAKEN} (from the sidecar of {tiny_run}" in printed
    # The defaults say image_size 224; the MINDIR's own 32 is used, never "pass --image_size 32".
    result_json = str(tmp_path / "mindir.json")
    cfg = load_config(["--data_path", data, "--checkpoint_path", exported, "--result_json", result_json])
    assert cfg.image_size == 224
    assert evaluate_checkpoints(cfg, Placement("CPU")) == 0
    assert "settings: image_size 32, class_num 10 (from the shapes of" in capsys.readouterr().out
    assert json.load(open(result_json))["results"][0]["images"] == 20
    with pytest.raises(UserError, match=r"^--image_size 224 contradicts the shapes of .*tiny.mindir, which holds "
                                        r"image_size 32"):
        evaluate_checkpoints(load_config(["--data_path", data, "--checkpoint_path", exported, "--image_size", "224"]),
                             Placement("CPU"))


def test_preprocess_takes_the_run_or_the_mindir(tiny_run, exported, data, tmp_path):
    exported, _ = exported
    out = str(tmp_path / "from_run")
    preprocess.main(["--data_path", data, "--checkpoint_path", tiny_run, "--output_path", out])
    assert json.load(open(os.path.join(out, "meta.json")))["input_shape"] == [1, 3, 32, 32]
    out = str(tmp_path / "from_mindir")
    preprocess.main(["--data_path", data, "--mindir_path", exported, "--output_path", out])
    assert json.load(open(os.path.join(out, "meta.json")))["input_shape"] == [2, 3, 32, 32]
    with pytest.raises(UserError, match=r"^--batch_size 4 contradicts the shapes of .*tiny.mindir, which holds "
                                        r"export_batch_size 2"):
        preprocess.main(["--data_path", data, "--mindir_path", exported, "--batch_size", "4", "--output_path", out])
