"""Stochastic depth (Huang et al. 2016, "Deep Networks with Stochastic Depth"), as timm's `DropPath`."""
from mindspore import nn, ops


class DropPath(nn.Cell):
    """In training, zero a residual branch for a random `rate` of the samples and scale the others by
    1 / (1 - rate), so the expected output is unchanged; the identity in inference (and in exports).

    The per-sample mask is a dropout of ones, drawn from MindSpore's global seed like every random op."""

    def __init__(self, rate: float):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop path rate must be in [0, 1), got {rate}")
        self.rate = rate
        self.dropout = nn.Dropout(p=rate)

    def construct(self, x):
        if not self.training:
            return x
        mask = self.dropout(ops.ones((x.shape[0], 1, 1, 1), x.dtype))
        return x * mask
