"""What each config key allows: one rule per key, checked once where the config is loaded.

The defaults live in config/sknet50_cifar10.yaml; the allowed values live here, in the same order.
To add a key: add it to the YAML and give it a rule in `RULES` (`unit.test_config` fails for a key
without one). Rules that involve two keys go in `CROSS_CHECKS`. Every violation is a one-line
`UserError` naming the flag, what is allowed and the value given.
"""
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from src.utils.device import CONV_IMPLS
from src.utils.errors import UserError


@dataclass(frozen=True)
class Range:
    """A number from `low` to `high` (None: unbounded); `above`/`below` make `low`/`high` exclusive."""
    low: float | None = None
    high: float | Callable[[], float] | None = None
    above: bool = False
    below: bool = False
    note: str = ""

    def problem(self, value: Any) -> str | None:
        high = self.high() if callable(self.high) else self.high
        too_low = self.low is not None and (value <= self.low if self.above else value < self.low)
        too_high = high is not None and (value >= high if self.below else value > high)
        if too_low or too_high:
            low = "" if self.low is None else f"{'above' if self.above else 'at least'} {_number(self.low)}"
            top = "" if high is None else f"{'below' if self.below else 'at most'} {_number(high)}"
            return " and ".join(part for part in (low, top) if part) + self.note
        return None


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]

    def problem(self, value: Any) -> str | None:
        return None if value in self.values else "one of " + " | ".join(self.values)


@dataclass(frozen=True)
class Pattern:
    """A string matching `regex` (null allowed when `optional`)."""
    regex: str
    meaning: str
    optional: bool = False

    def problem(self, value: Any) -> str | None:
        if value is None and self.optional:
            return None
        return None if isinstance(value, str) and re.fullmatch(self.regex, value) else self.meaning


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _cpu_count() -> int:
    return os.cpu_count() or 1


ANY = None  # free text or a path, checked where it is used
POSITIVE = Range(1)
COUNT_OR_OFF = Range(0, note=" (0 turns it off)")
NON_NEGATIVE = Range(0)

RULES: dict[str, Any] = {
    # ---- model ----
    "arch": Choice(("sknet50", "sknet_tiny")),
    "class_num": Range(2, note=" (a classifier needs two classes)"),
    "stem_type": Choice(("imagenet", "cifar")),
    "image_size": POSITIVE,  # and the stem's minimum, in CROSS_CHECKS
    "conv_impl": Choice(CONV_IMPLS),
    "zero_init_last": ANY,
    # ---- data ----
    "data_path": ANY,
    "eval_data_path": ANY,
    "batch_size": POSITIVE,
    "eval_batch_size": POSITIVE,
    "num_parallel_workers": Range(0, _cpu_count, note=", this machine's CPU count (0 picks from it)"),
    "shuffle": ANY,
    "augment": ANY,
    "auto_augment": Choice(("none", "cifar10")),
    "cutout": Range(0, 32, note=" (pixels of the 32x32 image; 0 turns it off)"),
    "download": ANY,
    "download_url": ANY,
    "download_md5": Pattern(r"[0-9a-fA-F]{32}", "32 hex digits (an MD5)"),
    "download_sha256": Pattern(r"[0-9a-fA-F]{64}", "64 hex digits (a SHA-256) or null", optional=True),
    "seed": Range(0, 2 ** 32 - 1),
    # ---- optimisation ----
    "epoch_size": POSITIVE,
    "momentum": Range(0, 1),
    "weight_decay": NON_NEGATIVE,
    "lr_init": NON_NEGATIVE,
    "lr_max": NON_NEGATIVE,
    "lr_end": NON_NEGATIVE,
    "warmup_epochs": NON_NEGATIVE,
    "lr_decay_mode": Choice(("poly", "cosine", "linear", "steps")),
    "lr_scale_with_devices": ANY,
    "label_smooth_factor": Range(0, 1, below=True, note=" (0 turns it off)"),
    "loss_scale": Range(0, above=True),
    "loss_scale_type": Choice(("fixed", "dynamic")),
    "amp_level": Choice(("auto", "O0", "O1", "O2", "O3")),
    "ema_decay": Range(0, 1, below=True, note=" (0 turns it off; e.g. 0.9999)"),
    # ---- run ----
    "device_target": Choice(("Ascend", "GPU", "CPU")),
    "device_id": Range(0, 4095),
    "run_distribute": ANY,
    "deterministic": ANY,
    "output_path": ANY,
    "checkpoint_path": ANY,
    "pre_trained": ANY,
    "resume": ANY,
    "overwrite": ANY,
    "save_checkpoint_epochs": POSITIVE,
    "keep_checkpoint_max": Range(0, note=" (0 keeps every checkpoint)"),
    "eval_interval": COUNT_OR_OFF,
    "log_interval": COUNT_OR_OFF,
    "sink_size": Pattern(r"auto|[1-9][0-9]*", "auto or a whole number of at least 1"),  # a divisor: resolve_sink_size
    "result_json": ANY,
    "use_ema": ANY,
    # ---- export / inference ----
    "ckpt_file": ANY,
    "file_name": ANY,
    "file_format": Choice(("MINDIR", "AIR", "ONNX")),
    "export_batch_size": POSITIVE,
    "mindir_path": ANY,
    "preprocess_output_path": ANY,
    "result_path": ANY,
    "label_path": ANY,
}

# The smallest image each stem can take: the network's total stride (the last stage keeps one pixel).
MIN_IMAGE_SIZE = {"imagenet": 32, "cifar": 8}


def _image_size_fits_the_stem(values: dict[str, Any]) -> tuple[str, str] | None:
    smallest = MIN_IMAGE_SIZE.get(values.get("stem_type"))
    if smallest and values.get("image_size", smallest) < smallest:
        other = "" if smallest == MIN_IMAGE_SIZE["cifar"] else f"; --stem_type cifar takes {MIN_IMAGE_SIZE['cifar']}"
        return "image_size", (f"at least {smallest} with --stem_type {values['stem_type']} (the network's total "
                              f"stride{other})")
    return None


CROSS_CHECKS: tuple[Callable[[dict[str, Any]], tuple[str, str] | None], ...] = (_image_size_fits_the_stem,)


def validate(values: dict[str, Any], flag_names: dict[str, str] | None = None) -> None:
    """Check every key of `values` against its rule; `flag_names` maps a key to the flag that sets it
    on this entry point (export.py's --batch_size sets export_batch_size)."""
    names = flag_names or {}
    problems = [(key, rule.problem(values[key])) for key, rule in RULES.items()
                if rule is not None and key in values]
    problems += [found for check in CROSS_CHECKS if (found := check(values))]
    for key, allowed in problems:
        if allowed:
            raise UserError(f"--{names.get(key, key)} must be {allowed}, got {values[key]!r}")
