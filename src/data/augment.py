"""Strong CIFAR augmentation for training: AutoAugment (CIFAR-10 policy) or RandAugment, and Cutout.

All are MindSpore's own dataset ops (`vision.AutoAugment`, `vision.RandAugment`, `vision.CutOut`), drawn from the
dataset's global seed (`mindspore.dataset.config.set_seed`, set from `--seed`), so the same seed gives
the same images. They are applied to the training split only.
"""
from mindspore.dataset import vision

from src.utils.errors import UserError

AUTO_AUGMENT_POLICIES = {"cifar10": vision.AutoAugmentPolicy.CIFAR10}
AUTO_AUGMENT_CHOICES = ("none", *AUTO_AUGMENT_POLICIES, "randaugment")
CIFAR_SIZE = 32

# Until config keys are checked where they are declared (src/utils/config.py), they are checked here,
# where they are used; each check is one line that can move there.


def check_augment_settings(auto_augment: str, cutout: int) -> None:
    if auto_augment not in AUTO_AUGMENT_CHOICES:
        raise UserError(f"--auto_augment {auto_augment!r} is not one of {', '.join(AUTO_AUGMENT_CHOICES)}")
    if not 0 <= cutout <= CIFAR_SIZE:
        raise UserError(f"--cutout {cutout} must be 0 (off) to {CIFAR_SIZE} (pixels of the 32x32 image)")


def auto_augment_ops(auto_augment: str, num_ops: int = 2, magnitude: int = 9) -> list:
    """On uint8 HWC images after crop and flip; nothing for `none`. `num_ops` and `magnitude` (of 31 bins,
    torchvision's scale) are RandAugment's."""
    if auto_augment == "none":
        return []
    if auto_augment == "randaugment":
        return [vision.RandAugment(num_ops=num_ops, magnitude=magnitude)]
    return [vision.AutoAugment(policy=AUTO_AUGMENT_POLICIES[auto_augment])]


def cutout_ops(cutout: int, image_size: int) -> list:
    """After normalisation, so the square becomes 0 = the data set's mean colour (as in DeVries & Taylor,
    2017). `cutout` counts pixels of the 32x32 image and is scaled with the resize to `image_size`."""
    if cutout == 0:
        return []
    return [vision.CutOut(max(1, round(cutout * image_size / CIFAR_SIZE)), num_patches=1, is_hwc=True)]
