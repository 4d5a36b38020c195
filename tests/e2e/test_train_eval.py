"""train.py and eval.py as real processes on a tiny network and a small CIFAR-format set."""
import csv
import json
import os
import re
import shutil

import numpy as np
import pytest

from tests.helpers.cifar_data import write_cifar_layout
from src.utils.checkpoint_file import load_checkpoint_file
from src.utils.config import load_config
from src.utils.device import Placement
from src.utils.errors import UserError
from src.evaluation.eval_checkpoints import evaluate_checkpoints
from src.sknet50 import create_model
from src.training.build import learning_rates, load_pre_trained
from tests.helpers.tiny_runs import MODEL, TRAIN, run
from tests.helpers.tiny_runs import TRAIN_STEPS as STEPS


def metrics(folder):
    with open(os.path.join(folder, "metrics.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("data")), per_train_file=32, test_count=20)


@pytest.fixture(scope="module")
def straight_run(data, tmp_path_factory):
    """Two epochs without interruption."""
    out = str(tmp_path_factory.mktemp("straight"))
    proc = run("train.py", *TRAIN, "--data_path", data, "--output_path", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc


@pytest.mark.slow
def test_training_writes_checkpoints_logs_and_the_loss_drops(straight_run):
    out, proc = straight_run
    assert sorted(os.listdir(out)) == sorted(["best.ckpt", "best.ckpt.json", "config.yaml", "metrics.csv", "metrics.png",
                                              f"sknet_tiny-1_{STEPS}.ckpt", f"sknet_tiny-1_{STEPS}.ckpt.json",
                                              f"sknet_tiny-2_{STEPS}.ckpt", f"sknet_tiny-2_{STEPS}.ckpt.json"])
    epoch_lines = [line for line in proc.stdout.splitlines() if re.match(r"epoch \d+/2 \|", line)]
    assert len(epoch_lines) == 2 and all(" ms/step | " in line and "ETA" in line and "top1" in line
                                         for line in epoch_lines)
    step_lines = [line for line in proc.stdout.splitlines() if line.startswith("epoch 1/2 step ")]
    # step lines have the step time and both ETAs; the first one times step 1 (the compile) apart
    speed = r"loss \S+ \| lr \S+ \| [\d.]+ img/s \| [\d.]+ ms/step \| ETA [\d:]+ epoch, [\d:]+ run"
    assert re.fullmatch(rf"epoch 1/2 step 2/{STEPS} \| {speed} \| compile\+1 step [\d.]+ s", step_lines[0]), step_lines
    assert re.fullmatch(rf"epoch 1/2 step 4/{STEPS} \| {speed}", step_lines[1]), step_lines
    rows = metrics(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2] and [int(r["step"]) for r in rows] == [STEPS, 2 * STEPS]
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])
    # It learns: top-1 rises well above chance (10%), and best.ckpt holds the better epoch.
    top1 = [float(r["top1"]) for r in rows]
    assert top1[0] < top1[1] and top1[1] >= 0.5, top1
    with open(os.path.join(out, "best.ckpt.json"), encoding="utf-8") as handle:
        best = json.load(handle)
    assert (best["epoch"], best["top1"]) == (2, pytest.approx(top1[1], abs=1e-6))
    # The LR of each epoch's last step is the schedule's (the position runs on across epochs).
    schedule = learning_rates(load_config(TRAIN), 1, STEPS, 0)
    assert [float(r["lr"]) for r in rows] == pytest.approx([schedule[STEPS - 1], schedule[2 * STEPS - 1]], abs=1e-8)
    assert load_config(["--config_path", os.path.join(out, "config.yaml")]).arch == "sknet_tiny"
    assert "Traceback" not in proc.stderr and "total_instance_count" not in proc.stderr


@pytest.mark.slow
def test_resume_auto_after_epoch_1_equals_the_straight_run(straight_run, data, tmp_path):
    straight, _ = straight_run
    stopped = str(tmp_path / "stopped")
    shutil.copytree(straight, stopped)
    for name in os.listdir(stopped):  # what a run stopped after epoch 1 leaves behind
        if name.startswith("sknet_tiny-2_") or name.startswith("best."):
            os.remove(os.path.join(stopped, name))
    proc = run("train.py", *TRAIN, "--data_path", data, "--output_path", stopped, "--resume", "auto")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"epoch 1, global step {STEPS}" in proc.stdout and "epoch 1/2 |" not in proc.stdout

    final = f"sknet_tiny-2_{STEPS}.ckpt"
    expected, expected_meta = load_checkpoint_file(os.path.join(straight, final))
    resumed, resumed_meta = load_checkpoint_file(os.path.join(stopped, final))
    assert resumed_meta["global_step"] == expected_meta["global_step"] == 2 * STEPS
    moments = [name for name in expected if name.startswith("moments.")]
    assert moments and set(resumed) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(resumed[name], value, rtol=1e-4, atol=1e-6, err_msg=name)
    # The LR continued at the same step, and metrics.csv kept epoch 1 and added epoch 2 once.
    assert [r["lr"] for r in metrics(stopped)] == [r["lr"] for r in metrics(straight)]


@pytest.mark.slow
def test_eval_folder_reports_a_table_the_best_and_a_corrupt_file(straight_run, data, tmp_path):
    straight, _ = straight_run
    folder = str(tmp_path / "ckpts")
    os.makedirs(folder)
    for epoch in (1, 2):
        for suffix in ("", ".json"):
            shutil.copy(os.path.join(straight, f"sknet_tiny-{epoch}_{STEPS}.ckpt{suffix}"),
                        os.path.join(folder, f"sknet_tiny-{epoch * 5}_{STEPS}.ckpt{suffix}"))  # epochs 5, 10
    broken = os.path.join(folder, f"sknet_tiny-7_{STEPS}.ckpt")
    with open(os.path.join(folder, f"sknet_tiny-10_{STEPS}.ckpt"), "rb") as handle:
        raw = handle.read()
    with open(broken, "wb") as handle:
        handle.write(raw[: len(raw) // 3])
    shutil.copy(os.path.join(folder, f"sknet_tiny-10_{STEPS}.ckpt.json"), broken + ".json")
    result_json = str(tmp_path / "results.json")
    proc = run("eval.py", *MODEL, "--data_path", data, "--checkpoint_path", folder, "--result_json", result_json)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # Without config.yaml, the settings come from the newest readable sidecar; then the listing.
    settings = next(line for line in proc.stdout.splitlines() if line.startswith("settings: "))
    out = proc.stdout.split(settings, 1)[1]
    assert settings.startswith("settings: arch sknet_tiny, stem_type cifar, class_num 10, image_size 32 (from the "
                               f"sidecar of {folder}/sknet_tiny-10_{STEPS}.ckpt)"), proc.stdout
    order = [out.index(f"sknet_tiny-{e}_{STEPS}.ckpt") for e in (5, 7, 10)]
    assert order == sorted(order), "natural order: 5, 7, 10"
    assert f"sknet_tiny-7_{STEPS}.ckpt is corrupt or truncated" in out and "FAILED" in out
    assert f"1 of 3 checkpoints could not be evaluated: sknet_tiny-7_{STEPS}.ckpt" in out
    results = json.load(open(result_json))
    assert [os.path.basename(r["checkpoint"]) for r in results["results"]] == [f"sknet_tiny-5_{STEPS}.ckpt",
                                                                               f"sknet_tiny-10_{STEPS}.ckpt"]
    assert all(r["images"] == 20 and len(r["predictions"]) == 20 for r in results["results"])
    # Not a constant network: several classes predicted, and the two checkpoints score differently.
    assert all(len(set(r["predictions"])) >= 4 for r in results["results"]), results["results"]
    first, second = (r["top1"] for r in results["results"])
    assert first < second
    assert f"best: sknet_tiny-10_{STEPS}.ckpt with top1 {second:.2%}" in out
    assert results["best"]["checkpoint"].endswith(f"sknet_tiny-10_{STEPS}.ckpt")
    # eval.py agrees with the in-training evaluation of the same weights, epoch by epoch.
    assert [r["top1"] for r in results["results"]] == pytest.approx([float(r["top1"]) for r in metrics(straight)],
                                                                    abs=1e-6)
    for result in results["results"]:
        predictions = np.array(result["predictions"])
        assert abs((predictions == _labels(data)).mean() - result["top1"]) < 1e-9
    best = max(results["results"], key=lambda r: r["top1"])
    # The original model zoo's result line, and the per-class table of the best checkpoint.
    assert f"result: {{'top_1_accuracy': {best['top1']}, 'top_5_accuracy': {best['top5']}, 'loss': {best['loss']}}} " \
           f"ckpt= {best['checkpoint']}" in out
    table = out.split(f"per-class accuracy of {os.path.basename(best['checkpoint'])}:\n")[1].splitlines()
    assert table[0].startswith("class") and [row.split()[0] for row in table[1:11]] == [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for r in results["results"]:
        matrix = np.array(r["confusion_matrix"])
        assert matrix.shape == (10, 10) and matrix.sum() == 20 and np.trace(matrix) == round(r["top1"] * 20)
        np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(_labels(data), minlength=10))


def _labels(data):
    from src.data.cifar10_files import read_cifar10_bin, resolve_split_files
    return read_cifar10_bin(resolve_split_files(data, "eval"))[1]


@pytest.mark.slow
def test_eval_single_file(straight_run, data):
    straight, _ = straight_run
    proc = run("eval.py", *MODEL, "--data_path", data, "--checkpoint_path", os.path.join(straight, "best.ckpt"))
    assert proc.returncode == 0, proc.stderr
    assert "best.ckpt: top1" in proc.stdout and "20 images" in proc.stdout


def _config(data, checkpoint_path, *extra):
    return load_config([*MODEL, "--data_path", data, "--checkpoint_path", checkpoint_path, *extra])


@pytest.mark.slow
@pytest.mark.parametrize("case, match", [
    ("missing", "does not exist"),
    ("empty", "holds no .ckpt files"),
    ("wrong_classes", r"--class_num 12 contradicts the sidecar of .*best.ckpt, which holds class_num 10"),
    ("wrong_stem", "--stem_type imagenet contradicts the sidecar of .*best.ckpt, which holds stem_type cifar"),
    ("not_a_checkpoint", "neither a .ckpt nor a .mindir"),
])
def test_eval_bad_inputs_never_evaluate_random_weights(straight_run, data, tmp_path, case, match):
    straight, _ = straight_run
    best = os.path.join(straight, "best.ckpt")
    extra = []
    if case == "missing":
        path = str(tmp_path / "nope.ckpt")
    elif case == "empty":
        path = str(tmp_path)
    elif case == "not_a_checkpoint":
        path = os.path.join(straight, "config.yaml")
    else:
        path = best
        extra = ["--class_num", "12"] if case == "wrong_classes" else ["--stem_type", "imagenet"]
    with pytest.raises(UserError, match=match):
        evaluate_checkpoints(_config(data, path, *extra), Placement("CPU"))


@pytest.mark.slow
def test_eval_bad_input_exit_code_and_one_line(data, tmp_path):
    proc = run("eval.py", *MODEL, "--data_path", data, "--checkpoint_path", str(tmp_path / "missing.ckpt"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: --checkpoint_path {tmp_path / 'missing.ckpt'} does not exist"


@pytest.mark.slow
def test_unavailable_device_is_a_clear_error(data):
    proc = run("train.py", "--device_target", "GPU", "--data_path", data)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: --device_target GPU is not available in this MindSpore")


@pytest.mark.slow
def test_pre_trained_skips_only_the_classifier_and_refuses_other_networks(straight_run):
    straight, _ = straight_run
    best = os.path.join(straight, "best.ckpt")
    five_classes = create_model("sknet_tiny", 5, stem_type="cifar")
    report = load_pre_trained(five_classes, best)
    assert "skipped fc.weight, fc.bias" in report
    params, _ = load_checkpoint_file(best)
    np.testing.assert_array_equal(five_classes.stem.conv.weight.asnumpy(), params["stem.conv.weight"])
    with pytest.raises(UserError, match="does not fit the network"):
        load_pre_trained(create_model("sknet_tiny", 10, stem_type="imagenet"), best)


@pytest.mark.slow
def test_eval_mindir_with_fixed_batch_matches_the_checkpoint(straight_run, data, tmp_path):
    import mindspore as ms
    straight, _ = straight_run
    best = os.path.join(straight, "best.ckpt")
    net = create_model("sknet_tiny", 10, stem_type="cifar")
    load_pre_trained(net, best)
    net.set_train(False)
    # Batch 8 over 20 test images: the last batch of 4 must be padded, and the padding dropped.
    ms.export(net, ms.Tensor(np.zeros((8, 3, 32, 32), np.float32)), file_name=str(tmp_path / "tiny"),
              file_format="MINDIR")
    outputs = {}
    for name, path in (("mindir", str(tmp_path / "tiny.mindir")), ("ckpt", best)):
        result_json = str(tmp_path / f"{name}.json")
        assert evaluate_checkpoints(_config(data, path, "--result_json", result_json), Placement("CPU")) == 0
        outputs[name] = json.load(open(result_json))["results"][0]
    assert outputs["mindir"]["images"] == 20
    assert len(set(outputs["ckpt"]["predictions"])) >= 4, "a constant network would make this comparison empty"
    assert outputs["mindir"]["predictions"] == outputs["ckpt"]["predictions"]
    assert abs(outputs["mindir"]["loss"] - outputs["ckpt"]["loss"]) < 1e-4


@pytest.mark.parametrize("flag, value", [("save_checkpoint_epochs", "0"), ("epoch_size", "0"), ("eval_interval", "-1")])
def test_impossible_counts_are_refused_before_anything_starts(flag, value):
    from src.training.trainer import Trainer
    with pytest.raises(UserError, match=f"--{flag} must be"):
        Trainer(load_config([*MODEL, f"--{flag}", value]), Placement("CPU"))


@pytest.mark.parametrize("level, expected", [("auto", "O0"), ("O0", "O0")])
def test_cpu_amp_levels(level, expected):
    from src.utils.device import resolve_amp_level
    assert resolve_amp_level(level, "CPU") == expected
    assert resolve_amp_level("auto", "GPU") == "O2"


@pytest.mark.parametrize("level", ["O1", "O2", "O3"])
def test_fp16_amp_on_the_cpu_is_a_one_line_error(level):
    from src.utils.device import resolve_amp_level
    with pytest.raises(UserError, match=f"--amp_level {level} needs a GPU or Ascend"):
        resolve_amp_level(level, "CPU")
