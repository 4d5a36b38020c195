"""`--help` of each entry point as a user runs it: the keys that script reads, grouped, with type, range
and default, then its examples; without loading MindSpore (train.py, eval.py, postprocess.py)."""
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT


def help_of(script: str) -> tuple[str, str]:
    """(stdout, the import log) of `python -X importtime SCRIPT --help`."""
    proc = subprocess.run([sys.executable, "-X", "importtime", os.path.join(REPO_ROOT, script), "--help"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


@pytest.mark.parametrize("script, present, absent", [
    ("train.py", ["\nmodel:\n", "\noptimisation:\n", "--epoch_size INT", "--train_url PATH", "--device_num N",
                  "examples:\n    python train.py"], ["--ckpt_file", "--result_path", "--width"]),
    ("eval.py", ["\nmodel:\n", "--checkpoint_path PATH", "--eval_batch_size INT", "examples:\n    python eval.py"],
     ["--epoch_size", "--lr_max", "--ckpt_file", "--train_url"]),
    ("postprocess.py", ["--result_path PATH, --result_dir PATH", "--label_dir DIR",
                        "examples:\n    python postprocess.py"], ["--arch", "--device_target", "--epoch_size"]),
    ("infer.py", ["[IMAGE_OR_FOLDER ...]", "--checkpoint_path PATH", "examples:\n    python infer.py"],
     ["--epoch_size", "--lr_max", "--data_path"]),
])
def test_help_lists_the_scripts_keys_without_loading_mindspore(script, present, absent):
    text, imports = help_of(script)
    for part in present:
        assert part in text, (part, text)
    for part in absent:
        assert part not in text, (part, text)
    assert "NONETYPE" not in text and " STR" not in text
    assert "mindspore" not in imports, "--help imported MindSpore"
