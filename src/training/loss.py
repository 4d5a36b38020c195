"""The training losses: label-smoothing cross-entropy (the model-zoo name) for integer labels, and
cross-entropy against soft targets for mixed batches (`src.data.mixing`, which smooths the targets itself)."""
from mindspore import nn, ops


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


class SoftTargetCrossEntropy(nn.Cell):
    """Mean over the batch of -sum(target * log_softmax(logits)) for (B, classes) probability targets (timm's)."""

    def construct(self, logits, targets):
        return -(targets * ops.log_softmax(logits, axis=-1)).sum(axis=-1).mean()


def create_loss(label_smooth_factor: float, class_num: int, soft_targets: bool) -> nn.Cell:
    """The loss of a training run: soft targets when the batches are mixed, else integer labels."""
    return SoftTargetCrossEntropy() if soft_targets else CrossEntropySmooth(label_smooth_factor, class_num)
