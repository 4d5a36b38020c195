"""Top-1, top-5 and loss of a classifier over a whole evaluation set, in dataset order, and the same over the
disjoint shards of a distributed run's ranks (`sum_across_ranks`)."""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class EvalResult:
    """Metrics over `images` images; `predictions` holds each image's top-1 class in dataset order,
    `confusion[true][predicted]` counts the images (class_num x class_num, rows = true class)."""
    top1: float
    top5: float
    loss: float
    images: int
    predictions: list[int] = field(repr=False)
    confusion: list[list[int]] = field(default_factory=list, repr=False)

    @classmethod
    def from_counts(cls, hits1: int, hits5: int, loss_sum: float, images: int, predictions: list[int],
                    confusion: np.ndarray) -> "EvalResult":
        if images == 0:
            raise ValueError("the evaluation set is empty")
        return cls(top1=hits1 / images, top5=hits5 / images, loss=loss_sum / images, images=images,
                   predictions=predictions, confusion=confusion.tolist())

    def to_dict(self, with_predictions: bool = True) -> dict:
        data = {"top1": self.top1, "top5": self.top5, "loss": self.loss, "images": self.images,
                "confusion_matrix": self.confusion}
        if with_predictions:
            data["predictions"] = self.predictions
        return data


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-image cross-entropy (no label smoothing), computed stably in float64."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels]


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, class_num: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs: rows = true class, columns = prediction."""
    matrix = np.zeros((class_num, class_num), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def top_k_hits(logits: np.ndarray, labels: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: (top-1 class, top-1 hit, top-k hit); k is capped at the class count, ties go to the lower class."""
    k = min(k, logits.shape[1])
    top_k = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return top_k[:, 0], top_k[:, 0] == labels, (top_k == labels[:, None]).any(axis=1)


def evaluate(predict: Callable[[np.ndarray], np.ndarray], dataset, fixed_batch: int | None = None) -> EvalResult:
    """Run `predict` (NCHW float32 batch -> logits) over every image of `dataset`.

    Args:
        predict: returns (batch, classes) logits for a batch of images.
        dataset: a MindSpore dataset of (image, label) batches, remainder kept.
        fixed_batch: for a graph with a fixed input batch (a MindIR), pad each short batch up to
            this size by repeating its last image and drop the padded outputs.
    """
    correct1 = correct5 = 0
    loss_sum = 0.0
    predictions: list[np.ndarray] = []
    confusion: np.ndarray | None = None
    for images, labels in dataset.create_tuple_iterator(num_epochs=1, output_numpy=True):
        count = len(labels)
        if fixed_batch and count < fixed_batch:
            images = np.concatenate([images, np.repeat(images[-1:], fixed_batch - count, axis=0)])
        logits = np.asarray(predict(images), dtype=np.float32)[:count]
        labels = labels.astype(np.int64)
        predicted, hit1, hit5 = top_k_hits(logits, labels)
        correct1 += int(hit1.sum())
        correct5 += int(hit5.sum())
        loss_sum += float(cross_entropy(logits, labels).sum())
        predictions.append(predicted)
        batch_confusion = confusion_matrix(labels, predicted, logits.shape[1])
        confusion = batch_confusion if confusion is None else confusion + batch_confusion
    total = sum(len(p) for p in predictions)
    return EvalResult.from_counts(correct1, correct5, loss_sum, total,
                                  [int(p) for p in np.concatenate(predictions)] if predictions else [], confusion)


def sum_across_ranks(result: EvalResult, rank_size: int, gather: Callable[[np.ndarray], np.ndarray] | None = None
                     ) -> EvalResult:
    """The metrics of the whole set from every rank's `result` on its own disjoint shard (`shard_indices`, which
    repeats no image): hits, images, loss sums and confusion matrices added up, on every rank.

    The counts travel as int32 and each rank's float64 loss sum as its 8 bytes (an int32 AllGather, as the resume
    check uses), so the counts are exact and the loss is the single process's up to the order of float64 sums.
    `predictions` hold this rank's shard only: per-image predictions are not gathered.
    `gather`: (values,) -> (rank_size * len(values),), the AllGather of all ranks (tests pass their own).
    """
    if rank_size < 2:
        return result
    confusion = np.asarray(result.confusion, dtype=np.int64)
    counts = np.array([round(result.top1 * result.images), round(result.top5 * result.images), result.images],
                      dtype=np.int32)
    loss_sum = np.array([result.loss * result.images], dtype=np.float64).view(np.int32)
    mine = np.concatenate([counts, loss_sum, confusion.astype(np.int32).ravel()])
    if gather is None:  # imported here: postprocess.py computes metrics without loading MindSpore
        import mindspore as ms
        from src.training.resume_agreement import _AllGather
        gather = lambda values: _AllGather()(ms.Tensor(values)).asnumpy()  # noqa: E731
    ranks = np.asarray(gather(mine)).reshape(rank_size, len(mine))
    hits1, hits5, images = ranks[:, :3].astype(np.int64).sum(axis=0)
    losses = np.ascontiguousarray(ranks[:, 3:5]).view(np.float64).ravel()
    return EvalResult.from_counts(int(hits1), int(hits5), float(losses.sum()), int(images), result.predictions,
                                  ranks[:, 5:].astype(np.int64).sum(axis=0).reshape(confusion.shape))
