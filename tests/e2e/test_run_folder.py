"""One run per output folder, and no file of another run is ever touched (real train.py processes).

A new run refuses a used --output_path; a second run in a folder that a live run holds is refused
with the holder's pid and host; the lock of a killed run is taken over. `best.ckpt`, rewritten in
place, stays loadable and verifiable when a kill lands inside its save. The launchers never import
Python modules from the caller's folder.
"""
import hashlib
import os
import shutil
import signal
import socket
import sys

import numpy as np
import pytest

from src.utils.checkpoint_file import load_checkpoint_file, verify_checkpoint
from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.faults import fault_env
from tests.helpers.launchers import run_script
from tests.helpers.processes import Watched, run_entry, start_entry

TINY = ["--device_target", "CPU", "--arch", "sknet_tiny", "--stem_type", "cifar", "--image_size", "32",
        "--batch_size", "4", "--warmup_epochs", "0", "--log_interval", "1", "--num_parallel_workers", "1",
        "--eval_interval", "0", "--shuffle", "false"]
# Refused after the folder is prepared (lock taken, old run checked, killed saves cleaned) and before training.
FAIL_AFTER_PREPARE = ["--batch_size", "1000"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("data")), per_train_file=4, test_count=4)


def the_one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def snapshot(folder) -> dict[str, tuple[str, int]]:
    """Every file's sha256 and mtime (ns)."""
    result = {}
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        with open(path, "rb") as handle:
            result[name] = (hashlib.sha256(handle.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return result


def an_old_run(folder) -> None:
    """The files a finished run leaves (only their sidecars' fields matter to the refusal), and two that
    are not the run's: a checkpoint without a sidecar and one whose sidecar is not a training run's."""
    folder.mkdir()
    for name, text in {"config.yaml": "epoch_size: 3\n", "metrics.csv": "epoch,step\n1,10\n2,20\n3,30\n",
                       "sknet_tiny-3_10.ckpt": "weights",
                       "sknet_tiny-3_10.ckpt.json": '{"size": 7, "resumable": true, "global_step": 30}',
                       "best.ckpt": "best", "best.ckpt.json": '{"size": 4, "top1": 0.5, "global_step": 30}',
                       "my_pretrained.ckpt": "pretrained", "converted.ckpt": "timm",
                       "converted.ckpt.json": '{"size": 4}'}.items():
        (folder / name).write_text(text)


NOT_THE_RUNS = ["converted.ckpt", "converted.ckpt.json", "my_pretrained.ckpt"]


def test_a_new_run_refuses_a_used_output_path_and_touches_nothing(data, tmp_path):
    out = tmp_path / "used"
    an_old_run(out)
    before = snapshot(out)
    proc = run_entry("train.py", [*TINY, "--data_path", data, "--output_path", str(out), "--epoch_size", "1"])
    assert proc.returncode == 1
    line = the_one_error_line(proc.stderr)
    assert f"--output_path {out} already holds a training run (2 checkpoints, config.yaml, metrics.csv)" in line
    assert "--resume auto" in line and "another --output_path" in line and "--overwrite true" in line
    assert snapshot(out) == before


def test_overwrite_deletes_the_old_run_and_refuses_to_go_with_resume(data, tmp_path):
    out = tmp_path / "used"
    an_old_run(out)
    both = run_entry("train.py", [*TINY, "--data_path", data, "--output_path", str(out), "--overwrite", "true",
                                  "--resume", "auto"])
    assert both.returncode == 1 and "pass only one of them" in the_one_error_line(both.stderr)
    assert "config.yaml" in os.listdir(out)
    proc = run_entry("train.py", [*TINY, "--data_path", data, "--output_path", str(out), "--overwrite", "true",
                                  *FAIL_AFTER_PREPARE])
    assert ("--overwrite: deleted the previous run's 6 files in {}: best.ckpt, best.ckpt.json, config.yaml, "
            "metrics.csv, sknet_tiny-3_10.ckpt, sknet_tiny-3_10.ckpt.json".format(out)) in proc.stdout, proc.stdout
    assert "--batch_size 1000 is larger" in the_one_error_line(proc.stderr)
    assert sorted(os.listdir(out)) == NOT_THE_RUNS  # the run's files and the lock (released at the end) are gone


def test_an_output_path_that_is_a_file_and_a_resume_folder_are_named(data, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    proc = run_entry("train.py", [*TINY, "--data_path", data, "--output_path", str(a_file)])
    assert proc.returncode == 1
    assert the_one_error_line(proc.stderr) == (f"error: --output_path {a_file} is a file, not a folder; pick a folder "
                                               "for the run's files")
    proc = run_entry("train.py", [*TINY, "--data_path", data, "--output_path", str(tmp_path / "out"),
                                  "--resume", str(tmp_path)])
    assert proc.returncode == 1
    assert f"--resume {tmp_path} is a folder; pass a checkpoint file in it (.ckpt), or --resume auto" in \
        the_one_error_line(proc.stderr)


def test_an_output_folder_deleted_mid_run_is_named(data, tmp_path):
    out = tmp_path / "out"
    run = start_entry("train.py", [*TINY, "--data_path", data, "--output_path", str(out), "--epoch_size", "2"],
                      env=fault_env(step_delay=0.5))
    run.wait_for("epoch 1/2 step 1/")
    shutil.rmtree(out)
    assert run.finish() == 1, run.output
    errors = [line for line in run.lines if line.startswith("error: ")]
    assert errors == [f"error: --output_path {out} was deleted while the run was writing to it; the files of the "
                      "run that were in it are lost; start again, or restore the folder and continue with "
                      "--resume auto"], run.output
    assert "Traceback" not in run.output


def test_a_second_run_is_refused_while_the_first_lives_and_a_dead_runs_lock_is_taken_over(data, tmp_path):
    out = tmp_path / "run"
    first = start_entry("train.py", [*TINY, "--data_path", data, "--output_path", str(out), "--epoch_size", "2"],
                        env=fault_env(pause_in_save=1))
    try:
        first.wait_for("fault: paused in save of")
        unfinished = [n for n in os.listdir(out) if n.startswith(".tmp-")]
        assert unfinished, os.listdir(out)
        second = run_entry("train.py", [*TINY, "--data_path", data, "--output_path", str(out), "--resume", "auto",
                                        *FAIL_AFTER_PREPARE])
        assert second.returncode == 1
        line = the_one_error_line(second.stderr)
        assert f"is in use by another training run (pid {first.proc.pid} on host {socket.gethostname()})" in line
        assert set(unfinished) <= set(os.listdir(out)), "the second run deleted the first run's save in progress"
    finally:
        first.proc.kill()
    assert first.finish() == -signal.SIGKILL
    third = run_entry("train.py", [*TINY, "--data_path", data, "--output_path", str(out), "--resume", "auto",
                                   *FAIL_AFTER_PREPARE])
    assert f"removed {unfinished[0]}" in third.stdout, third.stdout + third.stderr
    assert "--batch_size 1000 is larger" in the_one_error_line(third.stderr)


SAVE_BEST_TWICE = """
import sys
import mindspore as ms
import numpy as np
from src.utils.checkpoint_file import save_checkpoint_atomic

for value in (1.0, 2.0):
    entries = [{"name": "w", "data": ms.Tensor(np.full((8,), value, np.float32))}]
    save_checkpoint_atomic(entries, sys.argv[1], metadata={"top1": value / 10})
    print(f"saved {value}", flush=True)
"""


@pytest.mark.parametrize("fault, survivor", [
    ({"pause_in_save": 2}, 1.0),        # the new file is written, nothing renamed yet
    ({"pause_after_sidecar": 2}, 1.0),  # the new sidecar is in place, the checkpoint is not
    ({"pause_after_sidecar": 3}, 2.0),  # both in place, the sidecar rewritten without the old record
])
def test_a_kill_inside_a_best_ckpt_rewrite_leaves_a_verifiable_best_ckpt(tmp_path, fault, survivor):
    best = str(tmp_path / "best.ckpt")
    proc = Watched([sys.executable, "-c", SAVE_BEST_TWICE, best], env=fault_env(**fault))
    proc.wait_for("saved 1.0")
    proc.wait_for("fault: paused")
    proc.proc.kill()
    assert proc.finish() == -signal.SIGKILL
    meta = verify_checkpoint(best)
    params, _ = load_checkpoint_file(best)
    assert meta["top1"] == pytest.approx(survivor / 10)
    np.testing.assert_array_equal(params["w"], np.full((8,), survivor, np.float32))


FAKE_YAML = "import pathlib\npathlib.Path(__file__).with_name('imported').touch()\n"


@pytest.mark.parametrize("script", ["run_eval.sh", "run_standalone_train.sh"])
def test_launchers_never_import_a_module_from_the_callers_folder(data, tmp_path, script):
    caller = tmp_path / "caller"
    caller.mkdir()
    (caller / "yaml.py").write_text(FAKE_YAML)
    args = [data, data] if script == "run_eval.sh" else [data]
    result = run_script(script, [*args, "--image_size", "0"], env={"LOG_DIR": str(tmp_path / "logs"),
                                                                 "DEVICE_TARGET": "CPU"}, cwd=str(caller))
    assert not (caller / "imported").exists(), "the launcher imported yaml.py from the caller's folder"
    assert result.returncode == 1 and result.stderr.startswith("error: --image_size must be at least 1") and \
        result.stderr.splitlines()[0].endswith("got 0"), result.stderr
