"""Test-only fault hooks, switched on by environment variables that normal runs never set.

The reliability tests (tests/test_faults.py) cause real faults in real train.py processes. Two of
them need help from inside the process, and only these two:

- `SKNET_TEST_PAUSE_IN_SAVE=N`: the N-th checkpoint save of this process stops inside its save
  window (the temporary file is complete, the rename has not happened), prints
  `test hook: paused in save of PATH` and sleeps, so that the test can `kill -9` it exactly there.
- `SKNET_TEST_NAN_AT=E:S`: the images of step S (1-based) of epoch E become NaN, as a poisoned
  batch would.

Nothing here runs unless a variable is set; with them unset every function is a no-op.
"""
import os
import time

import mindspore as ms
import numpy as np

PAUSE_IN_SAVE = "SKNET_TEST_PAUSE_IN_SAVE"
NAN_AT = "SKNET_TEST_NAN_AT"
_saves_started = 0


def _int_from_env(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def pause_inside_save(final_path: str) -> None:
    """Sleep forever here if this is the save that `SKNET_TEST_PAUSE_IN_SAVE` names."""
    global _saves_started
    _saves_started += 1
    if _int_from_env(PAUSE_IN_SAVE) == _saves_started:
        print(f"test hook: paused in save of {final_path}", flush=True)
        while True:
            time.sleep(60)


def poison_batch(images, epoch: int, step_in_epoch: int):
    """NaN images at the step that `SKNET_TEST_NAN_AT` names; the batch unchanged otherwise."""
    if os.environ.get(NAN_AT) != f"{epoch}:{step_in_epoch}":
        return images
    return ms.Tensor(np.full(images.shape, np.nan, dtype=np.float32))
