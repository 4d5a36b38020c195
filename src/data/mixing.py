"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) over whole training batches, as timm's `Mixup`
in its default batch mode: one lambda per batch, each image mixed with the image at the mirrored batch
position, CutMix's lambda corrected to the pasted box's true area (clipped at the border), and label
smoothing applied to both targets before they are mixed. The labels become soft targets (B, classes), so
the loss takes probabilities (`src.training.loss.SoftTargetCrossEntropy`).

It runs as the training batch's `per_batch_map`, on normalised NCHW float images. Every batch draws from
its own generator, seeded by (seed, epoch, batch), so parallel batch workers give the same batches.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mixing:
    """mixup, cutmix: the Beta(alpha, alpha) of each (0 = off); prob: the share of batches mixed (when both
    are on, a mixed batch uses CutMix or mixup with even odds); smoothing: label smoothing; seed: the run's."""
    mixup: float
    cutmix: float
    prob: float
    smoothing: float
    class_num: int
    seed: int

    @property
    def enabled(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def __call__(self, images: np.ndarray, labels: np.ndarray, batch_info) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng((self.seed, batch_info.get_epoch_num(), batch_info.get_batch_num()))
        return self.mix(np.stack(images), np.asarray(labels), rng)

    def mix(self, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
        lam, use_cutmix = self._draw(rng)
        images = images.copy()
        mirrored = images[::-1]
        if lam < 1.0 and use_cutmix:
            top, bottom, left, right, lam = cutmix_box(images.shape[-2:], lam, rng)
            images[..., top:bottom, left:right] = mirrored[..., top:bottom, left:right]
        elif lam < 1.0:
            images = lam * images + (1.0 - lam) * mirrored
        targets = self._smoothed(labels)
        return images.astype(np.float32), (lam * targets + (1.0 - lam) * targets[::-1]).astype(np.float32)

    def _draw(self, rng: np.random.Generator) -> tuple[float, bool]:
        """(lambda, CutMix?) of one batch; lambda 1 leaves it unmixed (timm's `_params_per_batch`)."""
        if not self.enabled or rng.random() >= self.prob:
            return 1.0, False
        use_cutmix = self.cutmix > 0 and (self.mixup == 0 or rng.random() < 0.5)
        alpha = self.cutmix if use_cutmix else self.mixup
        return float(rng.beta(alpha, alpha)), use_cutmix

    def _smoothed(self, labels: np.ndarray) -> np.ndarray:
        off = self.smoothing / self.class_num
        targets = np.full((len(labels), self.class_num), off, np.float64)
        targets[np.arange(len(labels)), labels.astype(np.int64)] = 1.0 - self.smoothing + off
        return targets


def cutmix_box(size: tuple[int, int], lam: float, rng: np.random.Generator) -> tuple[int, int, int, int, float]:
    """A box of (1 - lam) of the image around a uniform centre, clipped at the border (timm's `rand_bbox`),
    and the lambda of what is left: 1 - the clipped box's area / the image's."""
    height, width = size
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    centre_y, centre_x = rng.integers(0, height), rng.integers(0, width)
    top, bottom = np.clip([centre_y - cut_h // 2, centre_y + cut_h // 2], 0, height)
    left, right = np.clip([centre_x - cut_w // 2, centre_x + cut_w // 2], 0, width)
    return int(top), int(bottom), int(left), int(right), 1.0 - (bottom - top) * (right - left) / (height * width)
