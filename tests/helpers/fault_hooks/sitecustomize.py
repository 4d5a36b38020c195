"""Faults that the reliability tests inject into real train.py processes (never part of the product).

Python imports `sitecustomize` at start-up from sys.path, so a test that puts this folder on
PYTHONPATH (`tests.helpers.faults.fault_env`) reaches every Python process it starts, including
the ranks that msrun launches. Each fault is switched on by its own variable:

- `FAULT_PAUSE_IN_SAVE=N`: the N-th checkpoint save of the process stops inside its save window
  (the temporary file is complete, nothing is renamed yet), prints `fault: paused in save of PATH`
  and sleeps, so that the test can `kill -9` it exactly there.
- `FAULT_PAUSE_AFTER_SIDECAR=N`: the N-th sidecar written by the process pauses right after its
  rename, before its checkpoint's rename (the crash window of a checkpoint rewritten in place),
  printing `fault: paused after sidecar PATH`.
- `FAULT_PAUSE_AFTER_SAVE=N`: the N-th training checkpoint save of the process pauses right after it
  returns (the checkpoint is complete and pruned), printing `fault: paused after save of PATH`.
- `FAULT_NAN_AT=E:S`: the images of step S (1-based) of epoch E become NaN, as a poisoned batch would.
- `FAULT_LEARNING_RATE=X`: every step of the run's schedule takes the learning rate X, beyond what
  --lr_max allows (1e30 makes the weights and the loss explode within a step, as real divergence does).
- `FAULT_STEP_DELAY=SECONDS`: every training step waits this long first, so that a signal sent while
  a test watches the log surely lands inside an epoch, not after its last step.

The functions are patched when their module is first imported, so a process that never imports
them pays nothing.
"""
import importlib.abc
import importlib.machinery
import os
import sys
import time

PAUSE_IN_SAVE = os.environ.get("FAULT_PAUSE_IN_SAVE")
NAN_AT = os.environ.get("FAULT_NAN_AT")
LEARNING_RATE = os.environ.get("FAULT_LEARNING_RATE")
STEP_DELAY = os.environ.get("FAULT_STEP_DELAY")
PAUSE_AFTER_SIDECAR = os.environ.get("FAULT_PAUSE_AFTER_SIDECAR")
PAUSE_AFTER_SAVE = os.environ.get("FAULT_PAUSE_AFTER_SAVE")


def _pause_forever(message: str) -> None:
    print(message, flush=True)
    while True:
        time.sleep(60)


def _pause_in_save(module) -> None:
    write, saves = module._write_with_mindspore, []

    def write_then_pause(save_obj, tmp, append_dict):
        write(save_obj, tmp, append_dict)
        saves.append(tmp)
        if PAUSE_IN_SAVE and len(saves) == int(PAUSE_IN_SAVE):
            _pause_forever(f"fault: paused in save of {tmp}")

    module._write_with_mindspore = write_then_pause


def _pause_after_sidecar(module) -> None:
    write_json, sidecars = module.write_json_atomic, []

    def write_then_pause(path, data):
        write_json(path, data)
        sidecars.append(path)
        if len(sidecars) == int(PAUSE_AFTER_SIDECAR):
            _pause_forever(f"fault: paused after sidecar {path}")

    module.write_json_atomic = write_then_pause


def _checkpoint_file_faults(module) -> None:
    if PAUSE_IN_SAVE:
        _pause_in_save(module)
    if PAUSE_AFTER_SIDECAR:
        _pause_after_sidecar(module)


def _pause_after_save(module) -> None:
    save, saves = module.CheckpointManager.save, []

    def save_then_pause(self, *args, **kwargs):
        path = save(self, *args, **kwargs)
        saves.append(path)
        if len(saves) == int(PAUSE_AFTER_SAVE):
            _pause_forever(f"fault: paused after save of {path}")
        return path

    module.CheckpointManager.save = save_then_pause


def _step_faults(module) -> None:
    import mindspore as ms
    import numpy as np

    step = module.Trainer._step

    def hurt_step(self, epoch, step_in_epoch, images, labels):
        if STEP_DELAY:
            time.sleep(float(STEP_DELAY))
        if f"{epoch}:{step_in_epoch}" == NAN_AT:
            images = ms.Tensor(np.full(images.shape, np.nan, dtype=np.float32))
        return step(self, epoch, step_in_epoch, images, labels)

    module.Trainer._step = hurt_step


def _learning_rate_fault(module) -> None:
    plan = module.plan_learning_rates

    def forced(*args, **kwargs):
        schedule = plan(*args, **kwargs)
        schedule.lr[:] = float(LEARNING_RATE)
        return schedule

    module.plan_learning_rates = forced


PATCHES = {}
if LEARNING_RATE:
    PATCHES["src.training.build"] = _learning_rate_fault
if PAUSE_IN_SAVE or PAUSE_AFTER_SIDECAR:
    PATCHES["src.utils.checkpoint_file"] = _checkpoint_file_faults
if PAUSE_AFTER_SAVE:
    PATCHES["src.training.checkpoint_manager"] = _pause_after_save
if NAN_AT or STEP_DELAY:
    PATCHES["src.training.trainer"] = _step_faults


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds the patched modules as usual and patches each right after it has run."""

    def find_spec(self, name, path, target=None):
        if name not in PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None:
            return None
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            PATCHES[name](module)

        spec.loader.exec_module = exec_module
        return spec


if PATCHES:
    sys.meta_path.insert(0, _PatchAfterImport())
