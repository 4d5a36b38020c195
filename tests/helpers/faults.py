"""Switch on the test-side fault hooks of `tests/helpers/fault_hooks` for the processes a test starts."""
import os

from tests.helpers import REPO_ROOT

HOOKS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_hooks")


def fault_env(pause_in_save: int | None = None, nan_at: str | None = None,
              pause_after_sidecar: int | None = None, step_delay: float | None = None,
              learning_rate: float | None = None) -> dict[str, str]:
    """Environment variables that make the started processes pause inside their N-th checkpoint save,
    or after their N-th sidecar's rename, turn the batch of epoch E step S ("E:S") into NaN, and/or
    wait `step_delay` seconds before every training step, and/or train every step at `learning_rate`."""
    env = {"PYTHONPATH": os.pathsep.join([HOOKS_DIR, REPO_ROOT, os.environ.get("PYTHONPATH", "")])}
    if pause_in_save is not None:
        env["FAULT_PAUSE_IN_SAVE"] = str(pause_in_save)
    if pause_after_sidecar is not None:
        env["FAULT_PAUSE_AFTER_SIDECAR"] = str(pause_after_sidecar)
    if nan_at is not None:
        env["FAULT_NAN_AT"] = nan_at
    if learning_rate is not None:
        env["FAULT_LEARNING_RATE"] = str(learning_rate)
    if step_delay is not None:
        env["FAULT_STEP_DELAY"] = str(step_delay)
    return env
