"""The confusion matrix of evaluate() and the per-class table printed by eval.py and postprocess.py."""
import numpy as np

from src.evaluation.metrics import confusion_matrix, evaluate
from src.evaluation.per_class import class_names, per_class_accuracy, per_class_table


class _Batches:
    """A stand-in for a MindSpore dataset: fixed (images, labels) batches."""

    def __init__(self, batches):
        self.batches = batches

    def create_tuple_iterator(self, num_epochs=1, output_numpy=True):
        return iter(self.batches)


def test_confusion_matrix_rows_are_the_true_class():
    matrix = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])


def test_evaluate_adds_up_the_confusion_of_every_batch():
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 10, size=n) for n in (8, 8, 3)]
    logits = [rng.standard_normal((n, 10)).astype(np.float32) for n in (8, 8, 3)]
    batches = [(logit, label) for logit, label in zip(logits, labels)]
    result = evaluate(lambda images: images, _Batches(batches))  # the "images" are the logits
    matrix = np.array(result.confusion)
    all_labels, all_logits = np.concatenate(labels), np.concatenate(logits)
    np.testing.assert_array_equal(matrix, confusion_matrix(all_labels, all_logits.argmax(axis=1), 10))
    assert matrix.sum() == 19 and np.trace(matrix) == round(result.top1 * 19)
    assert result.to_dict()["confusion_matrix"] == result.confusion


def test_per_class_table_names_cifar10_classes_and_the_worst_confusion():
    matrix = np.zeros((10, 10), dtype=int)
    matrix[3, 3], matrix[3, 5], matrix[3, 0] = 6, 3, 1  # cats: 60%, mostly taken for dogs
    matrix[9, 9] = 4
    table = per_class_table(matrix).splitlines()
    assert len(table) == 11 and table[0].split()[:2] == ["class", "top1"]
    cat = table[4].split()
    assert cat[:3] == ["cat", "60.00%", "6/10"] and " ".join(cat[3:]) == "dog (3)"
    assert table[10].split()[:3] == ["truck", "100.00%", "4/4"] and table[10].endswith("-")
    assert table[1].split()[:2] == ["airplane", "n/a"]  # no test image of that class
    assert per_class_accuracy(matrix)[3] == 0.6 and per_class_accuracy(matrix)[0] is None


def test_other_class_counts_get_numbered_names():
    assert class_names(3) == ["class 0", "class 1", "class 2"] and class_names(10)[0] == "airplane"
