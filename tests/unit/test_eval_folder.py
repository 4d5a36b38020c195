"""A run folder's evaluation: natural order, best.ckpt named by the epoch and step it holds (its sidecar) and
not evaluated again when an epoch checkpoint holds the same weights, the best line naming that checkpoint."""
import json
from types import SimpleNamespace

from src.evaluation.eval_checkpoints import CheckpointEvaluator, folder_targets, print_table
from src.evaluation.metrics import EvalResult
from src.utils.errors import UserError


def write_run(folder, best: dict | None, epochs=(1, 2, 10), steps=10) -> None:
    """Checkpoints and sidecars as train.py writes them (the weights themselves do not matter here)."""
    folder.mkdir()
    for epoch in epochs:
        name = f"sknet_tiny-{epoch}_{steps}.ckpt"
        (folder / name).write_bytes(b"w")
        (folder / f"{name}.json").write_text(json.dumps({"size": 1, "epoch": epoch, "global_step": epoch * steps,
                                                         "resumable": True, "step_in_epoch": 0}))
    if best is not None:
        (folder / "best.ckpt").write_bytes(b"b")
        (folder / "best.ckpt.json").write_text(json.dumps({"size": 1, "resumable": False, **best}))


def names(targets):
    return [(t.name, t.same_as and t.same_as.rsplit("/", 1)[-1]) for t in targets]


def test_best_is_named_by_its_epoch_placed_after_it_and_twinned_with_its_checkpoint(tmp_path):
    write_run(tmp_path / "run", {"epoch": 2, "global_step": 20, "weights": "trained"})
    assert names(folder_targets(str(tmp_path / "run"), use_ema=False)) == [
        ("sknet_tiny-1_10.ckpt", None), ("sknet_tiny-2_10.ckpt", None),
        ("best.ckpt (epoch 2, step 20)", "sknet_tiny-2_10.ckpt"), ("sknet_tiny-10_10.ckpt", None)]


def test_best_has_no_twin_when_its_checkpoint_is_gone_or_holds_other_weights(tmp_path):
    write_run(tmp_path / "pruned", {"epoch": 2, "global_step": 20}, epochs=(1, 3))
    assert names(folder_targets(str(tmp_path / "pruned"), use_ema=False)) == [
        ("sknet_tiny-1_10.ckpt", None), ("best.ckpt (epoch 2, step 20)", None), ("sknet_tiny-3_10.ckpt", None)]
    # A best.ckpt of the EMA holds other weights than the epoch checkpoint's trained ones, the same as its EMA.
    write_run(tmp_path / "ema", {"epoch": 2, "global_step": 20, "weights": "ema"}, epochs=(1, 2))
    assert names(folder_targets(str(tmp_path / "ema"), use_ema=False))[-1] == ("best.ckpt (epoch 2, step 20)", None)
    assert names(folder_targets(str(tmp_path / "ema"), use_ema=True))[-1] == ("best.ckpt (epoch 2, step 20)",
                                                                             "sknet_tiny-2_10.ckpt")
    write_run(tmp_path / "foreign", None, epochs=(1,))
    (tmp_path / "foreign" / "best.ckpt").write_bytes(b"no sidecar")
    assert names(folder_targets(str(tmp_path / "foreign"), use_ema=False))[-1] == ("best.ckpt", None)


class FakeEvaluator(CheckpointEvaluator):
    """Scores by file name, so that the listing and the table can be checked without a network."""
    top1 = {"sknet_tiny-1_10.ckpt": 0.5, "sknet_tiny-2_10.ckpt": 0.9, "sknet_tiny-10_10.ckpt": 0.7, "best.ckpt": 0.9}

    def __init__(self, failing=()):
        super().__init__(SimpleNamespace(eval_batch_size=10), None)
        self.evaluated, self.failing = [], failing

    def evaluate_checkpoint(self, path, dataset):
        name = path.rsplit("/", 1)[-1]
        self.evaluated.append(name)
        if name in self.failing:
            raise UserError(f"checkpoint {path} is corrupt or truncated")
        return EvalResult(self.top1[name], 1.0, 0.1, 20, [0] * 20), "trained"

    def _dataset(self, batch_size, image_size=None):
        return "dataset"


def test_best_is_evaluated_once_and_the_best_line_names_the_epoch_checkpoint(tmp_path, capsys):
    write_run(tmp_path / "run", {"epoch": 2, "global_step": 20, "weights": "trained"})
    evaluator = FakeEvaluator()
    outcomes = evaluator.run(folder_targets(str(tmp_path / "run"), use_ema=False), stop_on_error=False)
    assert evaluator.evaluated == ["sknet_tiny-1_10.ckpt", "sknet_tiny-2_10.ckpt", "sknet_tiny-10_10.ckpt"]
    print_table(outcomes)
    out = capsys.readouterr().out
    assert "best.ckpt (epoch 2, step 20): the weights of sknet_tiny-2_10.ckpt, not evaluated again" in out
    assert "best.ckpt (epoch 2, step 20)  = sknet_tiny-2_10.ckpt" in out
    assert "best: sknet_tiny-2_10.ckpt with top1 90.00%" in out
    # When the twin could not be evaluated, best.ckpt is, under its epoch's name.
    evaluator = FakeEvaluator(failing=("sknet_tiny-2_10.ckpt",))
    outcomes = evaluator.run(folder_targets(str(tmp_path / "run"), use_ema=False), stop_on_error=False)
    assert "best.ckpt" in evaluator.evaluated
    print_table(outcomes)
    assert "best: best.ckpt (epoch 2, step 20) with top1 90.00%" in capsys.readouterr().out
