"""The tiny training runs that the e2e tests share: train.py flags for `sknet_tiny` on the CPU, the step
counts they give on their test modules' data, and checks of the checkpoints a run leaves."""
import os
import shutil

import numpy as np

from src.utils.checkpoint_file import list_checkpoints, load_checkpoint_file, sidecar_path
from tests.helpers.processes import run_entry

MODEL = ["--device_target", "CPU", "--arch", "sknet_tiny", "--stem_type", "cifar", "--image_size", "32"]

# The train/eval runs. Deterministic: no shuffling or augmentation, so a resumed run can be compared
# with a straight one. The network really learns (about 50% then 90% top-1 on the 20 test images), so
# comparisons between eval paths compare varied predictions, not one constant class; the tests assert that.
TRAIN = MODEL + ["--batch_size", "16", "--eval_batch_size", "8", "--shuffle", "false", "--augment", "false",
                 "--epoch_size", "2", "--warmup_epochs", "0.4", "--lr_init", "0.01", "--lr_max", "0.1",
                 "--lr_end", "0.01", "--log_interval", "2", "--num_parallel_workers", "1"]
TRAIN_STEPS = 10  # 5 files x 32 images / batch 16

# The fault runs: the smallest batches, a progress line per step, no evaluation.
TINY = MODEL + ["--batch_size", "4", "--eval_batch_size", "4", "--warmup_epochs", "0", "--log_interval", "1",
                "--num_parallel_workers", "1", "--eval_interval", "0", "--shuffle", "false"]
TINY_STEPS = 10  # 5 files x 8 images / batch 4
CKPT_1, CKPT_2, CKPT_3 = (f"sknet_tiny-{epoch}_{TINY_STEPS}.ckpt" for epoch in (1, 2, 3))


def run(script, *args):
    """`run_entry` with the arguments spread out, as the train/eval tests write them."""
    return run_entry(script, list(args))


def train_args(data: str, out, *extra: str) -> list[str]:
    """A fault run's train.py arguments."""
    return [*TINY, "--data_path", data, "--output_path", str(out), *extra]


def assert_all_load(folder) -> list[dict]:
    """Every checkpoint under a final name passes its integrity check and loads; return their sidecars."""
    sidecars = []
    for path in list_checkpoints(str(folder)):
        params, meta = load_checkpoint_file(path)
        assert meta is not None and params, path
        assert all(np.isfinite(value).all() for value in params.values() if value.dtype.kind == "f"), path
        sidecars.append(meta)
    return sidecars


def copy_checkpoint(source_folder, name: str, target_folder) -> None:
    os.makedirs(target_folder, exist_ok=True)
    for path in (os.path.join(source_folder, name), sidecar_path(os.path.join(source_folder, name))):
        shutil.copy(path, target_folder)
