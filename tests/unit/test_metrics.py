"""evaluate() on known logits, and which checkpoint of a folder eval.py calls the best."""
import json
import math

import mindspore.dataset as ds
import numpy as np
import pytest

from src.evaluation.eval_checkpoints import Outcome, best_outcome, print_table, write_results
from src.data.pipeline import shard_indices
from src.evaluation.metrics import EvalResult, evaluate, sum_across_ranks

# Class probabilities of 6 images over 7 classes; the logits are their logs, so softmax gives them back.
PROBS = np.array([
    [0.40, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10],  # label 0 ranks 1st: top-1 and top-5 hit
    [0.10, 0.20, 0.40, 0.10, 0.10, 0.05, 0.05],  # label 1 ranks 2nd: top-5 hit only
    [0.20, 0.20, 0.01, 0.30, 0.10, 0.10, 0.09],  # label 2 ranks last: miss
    [0.30, 0.25, 0.20, 0.05, 0.15, 0.04, 0.01],  # label 3 ranks 5th: top-5 hit
    [0.30, 0.25, 0.20, 0.15, 0.04, 0.05, 0.01],  # label 4 ranks 6th: top-5 miss
    [1 / 7] * 7,                                 # a tie: the lower class wins, label 6 is outside the top 5
])
LABELS = np.array([0, 1, 2, 3, 4, 6])
PREDICTIONS = [0, 2, 3, 0, 0, 0]
LOSS = -np.mean(np.log([0.40, 0.20, 0.01, 0.05, 0.04, 1 / 7]))


def _batches(labels, batch_size):
    """A MindSpore dataset of (image, label) batches whose "images" hold their own index, so that a fake
    network can look their logits up. (NumpySlicesDataset fails under NumPy 2, hence the generator.)"""
    def records():
        for index, label in enumerate(labels):
            yield np.full((3, 2, 2), index, np.float32), np.asarray(label, np.int32)
    data = ds.GeneratorDataset(records, column_names=["image", "label"], shuffle=False)
    return data.batch(batch_size, drop_remainder=False)


def _dataset(batch_size):
    return _batches(LABELS, batch_size)


def _predict(images, expected_batch=None):
    if expected_batch is not None:
        assert len(images) == expected_batch
    return np.log(PROBS[images[:, 0, 0, 0].astype(int)]).astype(np.float32)


@pytest.mark.parametrize("batch_size", [4, 6, 1])
def test_evaluate_on_known_logits(batch_size):
    result = evaluate(_predict, _dataset(batch_size))
    assert result.images == 6
    assert result.predictions == PREDICTIONS
    assert result.top1 == pytest.approx(1 / 6, abs=1e-12)
    assert result.top5 == pytest.approx(3 / 6, abs=1e-12)
    assert result.loss == pytest.approx(LOSS, rel=1e-6)


def _shard(indices, batch_size):
    """The images `indices` of the set (each holding its index in the whole set), as one rank reads them."""
    def records():
        for index in indices:
            yield np.full((3, 2, 2), index, np.float32), np.asarray(LABELS[index], np.int32)
    return ds.GeneratorDataset(records, column_names=["image", "label"], shuffle=False).batch(batch_size)


@pytest.mark.parametrize("rank_size", [2, 4])
def test_the_ranks_shards_add_up_to_the_whole_set_and_no_image_counts_twice(rank_size):
    # 6 images over 4 ranks: shards of 2, 2, 1 and 1 images, each in a short batch of 3
    whole = evaluate(_predict, _dataset(3))
    shards = [evaluate(_predict, _shard(shard_indices(len(LABELS), rank, rank_size, equal=False), 3))
              for rank in range(rank_size)]
    sent = []  # what each rank puts into the AllGather
    for shard in shards:
        sum_across_ranks(shard, rank_size, gather=lambda values: sent.append(values) or np.tile(values, rank_size))
    for rank, shard in enumerate(shards):
        summed = sum_across_ranks(shard, rank_size, gather=lambda values: np.concatenate(sent))
        assert (summed.images, summed.top1, summed.top5, summed.confusion) == \
            (whole.images, whole.top1, whole.top5, whole.confusion), rank
        assert summed.loss == pytest.approx(whole.loss, rel=1e-12)
        assert summed.predictions == shard.predictions  # per-image predictions stay on their rank
    assert sum_across_ranks(whole, 1) is whole


def test_evaluate_pads_a_fixed_batch_graph_and_drops_the_padding():
    result = evaluate(lambda images: _predict(images, expected_batch=4), _dataset(4), fixed_batch=4)
    assert (result.images, result.predictions) == (6, PREDICTIONS)
    assert result.loss == pytest.approx(LOSS, rel=1e-6)


def test_top5_is_capped_at_the_class_count():
    logits = np.log(PROBS[:, :3] / PROBS[:, :3].sum(axis=1, keepdims=True))
    labels = np.array([0, 1, 2, 0, 1, 2])
    result = evaluate(lambda images: logits[images[:, 0, 0, 0].astype(int)], _batches(labels, 6))
    assert result.top5 == 1.0 and result.top1 == pytest.approx(np.mean(logits.argmax(axis=1) == labels))


def _outcome(name, top1):
    if top1 is None:
        return Outcome(f"/run/{name}", error="corrupt")
    return Outcome(f"/run/{name}", EvalResult(top1=top1, top5=1.0, loss=1.0, images=10, predictions=[0] * 10))


OUTCOMES = [_outcome("a-1_5.ckpt", 0.3), _outcome("a-2_5.ckpt", 0.9), _outcome("a-3_5.ckpt", None),
            _outcome("a-4_5.ckpt", 0.9), _outcome("a-5_5.ckpt", 0.1)]


def test_best_is_the_highest_top1_and_the_first_on_a_tie():
    assert best_outcome(OUTCOMES).path == "/run/a-2_5.ckpt"
    assert best_outcome(list(reversed(OUTCOMES))).path == "/run/a-4_5.ckpt"
    assert best_outcome([OUTCOMES[2]]) is None


def test_table_and_result_json_name_the_best(capsys, tmp_path):
    print_table(OUTCOMES)
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "best: a-2_5.ckpt with top1 90.00%"
    path = tmp_path / "r.json"
    write_results(str(path), OUTCOMES)
    data = json.loads(path.read_text())
    assert data["best"] == {"checkpoint": "/run/a-2_5.ckpt", "top1": 0.9}
    assert [math.isclose(r["top1"], t) for r, t in zip(data["results"], (0.3, 0.9, 0.9, 0.1))] == [True] * 4
    assert data["failed"] == [{"checkpoint": "/run/a-3_5.ckpt", "error": "corrupt"}]
