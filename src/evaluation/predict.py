"""Logits of a batch of images from a network, in graph calls of bounded size on the CPU.

The peak memory of a CPU graph call grows with its batch (~50 MB per 224x224 image for
SKNet-50's inference form, measured), so a large batch at 224x224 needs GBs. On the CPU a batch is
therefore run in calls of at most `CPU_PIXELS_PER_CALL` pixels: at 224x224, 4 images per call, which
cut eval's peak memory at batch 32 from 2.4 to 1.1 GB at no loss of speed (measured,
docs/performance.md); a batch of 32x32 images runs in one call up to 196 images. GPU and Ascend
reuse device memory inside a graph and run whole batches.
"""
import mindspore as ms
import numpy as np
from mindspore import nn

CPU_PIXELS_PER_CALL = 4 * 224 * 224


def images_per_call(image_size: int, device_target: str) -> int | None:
    """The most images one graph call gets (None: no limit)."""
    if device_target != "CPU":
        return None
    return max(1, CPU_PIXELS_PER_CALL // (image_size * image_size))


class Predictor:
    """`predictor(images)`: the logits of `net` (in inference mode) for a numpy batch, in calls of at most
    `per_call` images. A short last call is padded to `per_call` images, so the graph compiles once."""

    def __init__(self, net: nn.Cell, per_call: int | None):
        self.net = net
        self.per_call = per_call

    def __call__(self, images: np.ndarray) -> np.ndarray:
        count = len(images)
        if self.per_call is None or count <= self.per_call:
            return self.net(ms.Tensor(images)).asnumpy()
        outputs = []
        for start in range(0, count, self.per_call):
            piece = images[start:start + self.per_call]
            short = self.per_call - len(piece)
            if short:
                piece = np.concatenate([piece, np.repeat(piece[-1:], short, axis=0)])
            outputs.append(self.net(ms.Tensor(piece)).asnumpy()[:self.per_call - short])
        return np.concatenate(outputs)
