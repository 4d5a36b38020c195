"""Pruning a run's folder of checkpoints (by the save order in each verified sidecar, never by file name),
and the run's lineage: a resume from an older checkpoint starts a new branch, which pruning, `--resume auto`
and best.ckpt follow."""
import os

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from src.training.checkpoint_manager import BEST_NAME, CheckpointManager, RunState, find_resume_checkpoint
from src.utils.checkpoint_file import save_checkpoint_atomic
from src.utils.config import load_config

# (file name, global step): the natural order of the names is not the order of the steps.
RUN = [("sknet_tiny-1_10.ckpt", 10), ("sknet_tiny-2_4.ckpt", 14), ("sknet_tiny-2_10.ckpt", 20),
       ("sknet_tiny-3_10.ckpt", 30), ("sknet_tiny-10_10.ckpt", 100), ("sknet_tiny-4_10.ckpt", 40)]
STEPS = 20  # steps per epoch of the lineage tests


def _write(folder, name, step=0, **sidecar):
    entries = [{"name": "w", "data": ms.Tensor(np.full(3, step, np.float32))}]
    save_checkpoint_atomic(entries, os.path.join(folder, name), metadata={"global_step": step, **sidecar})


@pytest.fixture
def folder(tmp_path):
    for name, step in RUN:
        _write(str(tmp_path), name, step, resumable=True, epoch=step // 10)
    _write(str(tmp_path), "best.ckpt", 10, resumable=False, top1=0.9)
    _write(str(tmp_path), "pretrained.ckpt", resumable=False)
    return tmp_path


def _manager(folder, keep):
    return CheckpointManager(load_config(["--keep_checkpoint_max", str(keep), "--arch", "sknet_tiny",
                                          "--epoch_size", "3"]), str(folder), "O0")


def _prune(folder, keep):
    _manager(folder, keep).prune()
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("keep", [1, 2, 4])
def test_prune_keeps_the_k_newest_by_global_step(folder, keep):
    newest = [name for name, _ in sorted(RUN, key=lambda item: item[1])[-keep:]]
    others = ["best.ckpt", "pretrained.ckpt"]
    expected = sorted(name + suffix for name in newest + others for suffix in ("", ".json"))
    assert _prune(folder, keep) == expected


@pytest.mark.parametrize("keep", [0, len(RUN), len(RUN) + 3])
def test_prune_keeps_everything_when_off_or_not_full(folder, keep):
    before = sorted(os.listdir(folder))
    assert _prune(folder, keep) == before


def test_prune_verifies_the_files_and_keeps_a_truncated_one(folder, capsys):
    newest = str(folder / "sknet_tiny-10_10.ckpt")
    with open(newest, "r+b") as handle:
        handle.truncate(10)
    names = _prune(folder, 1)
    assert "sknet_tiny-10_10.ckpt" in names and "sknet_tiny-4_10.ckpt" in names, names
    assert f"warning: not pruning {newest}" in capsys.readouterr().err


class _Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(2, 2)

    def construct(self, x):
        return self.fc(x)


def _train(manager, net, optimizer, epoch, step_in_epoch=0, best=None):
    """Stand for training up to `epoch` (finished) plus `step_in_epoch` steps; save there."""
    net.fc.weight.set_data(ms.Tensor(np.full((2, 2), epoch * 100 + step_in_epoch, np.float32)))
    state = RunState(epoch=epoch, global_step=epoch * STEPS + step_in_epoch, step_in_epoch=step_in_epoch,
                     best_top1=best)
    return os.path.basename(manager.save(net, optimizer, state, STEPS))


@pytest.fixture
def finished_run(tmp_path):
    """A finished 2-epoch run (keep everything): epoch 1 evaluated at 10%, epoch 2 at 15% (best.ckpt)."""
    manager, net = _manager(tmp_path, 0), _Net()
    optimizer = nn.Momentum(net.trainable_params(), 0.1, 0.9)
    manager.save_best(net, RunState(1, STEPS, 0, 0.10), 0.10, 0.5)
    assert _train(manager, net, optimizer, 1, best=0.10) == "sknet_tiny-1_20.ckpt"
    manager.save_best(net, RunState(2, 2 * STEPS, 0, 0.15), 0.15, 0.5)
    assert _train(manager, net, optimizer, 2, best=0.15) == "sknet_tiny-2_20.ckpt"
    return tmp_path


def _resume(folder, keep, name):
    manager, net = _manager(folder, keep), _Net()
    state, _ = manager.restore(net, os.path.join(folder, name), STEPS)
    return manager, net, nn.Momentum(net.trainable_params(), 0.1, 0.9), state


def _checkpoints(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".ckpt") and n != BEST_NAME)


@pytest.mark.parametrize("keep", [1, 3])
def test_a_resume_from_an_older_checkpoint_starts_a_branch_that_pruning_and_resume_follow(finished_run, keep):
    manager, net, optimizer, state = _resume(finished_run, keep, "sknet_tiny-1_20.ckpt")
    saved = _train(manager, net, optimizer, 1, step_in_epoch=11, best=state.best_top1)  # a stop in epoch 2
    expected = ["sknet_tiny-1_20.ckpt", saved] if keep > 1 else [saved]
    assert _checkpoints(finished_run) == sorted(expected)  # the abandoned 2_20 is gone, the new save kept
    assert os.path.basename(find_resume_checkpoint(str(finished_run))[0]) == saved


def test_the_new_branch_is_resumed_even_before_the_abandoned_one_is_pruned(finished_run):
    manager, net, optimizer, _ = _resume(finished_run, 0, "sknet_tiny-1_20.ckpt")
    saved = _train(manager, net, optimizer, 1, step_in_epoch=11)
    assert "sknet_tiny-2_20.ckpt" in _checkpoints(finished_run)  # not pruned (keep 0): a kill before pruning
    assert os.path.basename(find_resume_checkpoint(str(finished_run))[0]) == saved


def test_pruning_keeps_the_new_save_and_the_last_valid_checkpoint_when_the_newest_is_truncated(finished_run):
    with open(finished_run / "sknet_tiny-2_20.ckpt", "r+b") as handle:
        handle.truncate(100)
    found = find_resume_checkpoint(str(finished_run))
    assert os.path.basename(found[0]) == "sknet_tiny-1_20.ckpt"
    manager, net, optimizer, _ = _resume(finished_run, 1, "sknet_tiny-1_20.ckpt")
    saved = _train(manager, net, optimizer, 1, step_in_epoch=11)
    assert saved in _checkpoints(finished_run)
    assert os.path.basename(find_resume_checkpoint(str(finished_run))[0]) == saved


def test_best_ckpt_is_rechosen_on_a_new_branch_and_kept_on_a_straight_resume(finished_run):
    *_, branched = _resume(finished_run, 0, "sknet_tiny-1_20.ckpt")
    assert branched.best_top1 is None  # best.ckpt holds the abandoned epoch 2's 15%: the next evaluation rewrites it
    *_, straight = _resume(finished_run, 0, "sknet_tiny-2_20.ckpt")
    assert straight.best_top1 == 0.15


def test_best_ckpt_stays_on_a_straight_resume_after_pruning(tmp_path):
    manager, net = _manager(tmp_path, 1), _Net()
    optimizer = nn.Momentum(net.trainable_params(), 0.1, 0.9)
    _train(manager, net, optimizer, 1, best=0.2)
    manager.save_best(net, RunState(2, 2 * STEPS, 0, 0.3), 0.3, 0.5)
    _train(manager, net, optimizer, 2, best=0.3)
    _train(manager, net, optimizer, 3, best=0.3)  # epoch 3 did not beat epoch 2; 1_20 and 2_20 are pruned
    manager2 = CheckpointManager(load_config(["--keep_checkpoint_max", "1", "--arch", "sknet_tiny",
                                              "--epoch_size", "4"]), str(tmp_path), "O0")
    state, _ = manager2.restore(_Net(), str(tmp_path / "sknet_tiny-3_20.ckpt"), STEPS)
    assert _checkpoints(tmp_path) == ["sknet_tiny-3_20.ckpt"]
    assert state.best_top1 == 0.3
