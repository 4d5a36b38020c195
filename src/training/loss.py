"""Label-smoothing cross-entropy (the model-zoo name), on top of MindSpore's built-in loss."""
from mindspore import nn


class CrossEntropySmooth(nn.Cell):
    """Cross-entropy with label smoothing for integer labels.

    The target is (1 - smooth_factor) * one_hot + smooth_factor / num_classes, as in
    `mindspore.nn.CrossEntropyLoss(label_smoothing=...)` (Szegedy et al. 2016).
    `num_classes` is accepted for compatibility with the seed's signature; the built-in
    loss takes the class count from the logits.
    """

    def __init__(self, smooth_factor: float = 0.1, num_classes: int = 10, reduction: str = "mean"):
        super().__init__()
        if not 0.0 <= smooth_factor < 1.0:
            raise ValueError(f"smooth_factor must be in [0, 1), got {smooth_factor}")
        self.num_classes = num_classes
        self.loss = nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smooth_factor)

    def construct(self, logits, labels):
        return self.loss(logits, labels)
