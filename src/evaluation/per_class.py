"""Per-class accuracy from a confusion matrix, as a table with the CIFAR-10 class names."""
import numpy as np

from src.data.cifar10_files import CLASS_NAMES


def class_names(class_num: int) -> list[str]:
    """CIFAR-10's names for 10 classes, `class 0`, `class 1`, ... for any other count."""
    return list(CLASS_NAMES) if class_num == len(CLASS_NAMES) else [f"class {i}" for i in range(class_num)]


def per_class_accuracy(confusion) -> list[float | None]:
    """Recall of each true class (the diagonal over the row sum); None for a class with no test image."""
    matrix = np.asarray(confusion, dtype=np.int64)
    totals = matrix.sum(axis=1)
    return [None if total == 0 else float(matrix[i, i]) / float(total) for i, total in enumerate(totals)]


def per_class_table(confusion, names: list[str] | None = None) -> str:
    """One line per class: name, accuracy, correct/images, and the class it is most often taken for."""
    matrix = np.asarray(confusion, dtype=np.int64)
    names = names or class_names(len(matrix))
    width = max(len("class"), *(len(name) for name in names))
    lines = [f"{'class':<{width}}  {'top1':>7}  {'correct':>13}  most confused with"]
    for index, accuracy in enumerate(per_class_accuracy(matrix)):
        row = matrix[index].copy()
        total, correct = int(row.sum()), int(row[index])
        row[index] = -1
        wrong = int(row.argmax())
        confused = f"{names[wrong]} ({row[wrong]})" if row[wrong] > 0 else "-"
        shown = "    n/a" if accuracy is None else f"{accuracy:7.2%}"
        lines.append(f"{names[index]:<{width}}  {shown}  {f'{correct}/{total}':>13}  {confused}")
    return "\n".join(lines)
