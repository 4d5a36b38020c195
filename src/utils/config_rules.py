"""Every config key in one place: what it allows, its group, what it means and which scripts read it.

The defaults live in config/sknet50_cifar10.yaml; the keys live here in `KEYS`, in the same order.
To add a key: add it to the YAML and give it a `Key` here (`unit.test_config_rules` fails for a key
without one). Rules that involve two keys go in `CROSS_CHECKS`. Every violation is a one-line
`UserError` naming the flag, what is allowed and the value given (cut to a bounded length).
`--help` of each script is built from the same entries (src.utils.config), so it lists only the
keys that script reads.
"""
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from src.utils.device import CONV_IMPLS, DEVICE_TARGET_CHOICES
from src.utils.errors import UserError
from src.utils.safe_text import shown


@dataclass(frozen=True)
class Range:
    """A number from `low` to `high`; `above`/`below` make `low`/`high` exclusive. Every key has both bounds:
    `high` is what a real run could need, so an absurd value is a one-line error, not an allocation."""
    low: float
    high: float | Callable[[], float]
    above: bool = False
    below: bool = False
    note: str = ""

    def problem(self, value: Any) -> str | None:
        high = self.high() if callable(self.high) else self.high
        too_low = value <= self.low if self.above else value < self.low
        too_high = value >= high if self.below else value > high
        return self.describe() if too_low or too_high else None

    def describe(self) -> str:
        high = self.high() if callable(self.high) else self.high
        return (f"{'above' if self.above else 'at least'} {_number(self.low)} and "
                f"{'below' if self.below else 'at most'} {_number(high)}{self.note}")


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]

    def problem(self, value: Any) -> str | None:
        return None if value in self.values else self.describe()

    def describe(self) -> str:
        return "one of " + " | ".join(self.values)


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

    def describe(self) -> str:
        return self.meaning


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _cpu_count() -> int:
    return os.cpu_count() or 1


# The scripts that read config keys (script="..." of load_config).
TRAIN, EVAL, EXPORT, PREPROCESS, POSTPROCESS = "train", "eval", "export", "preprocess", "postprocess"
INFER = "infer"
SCRIPTS = (TRAIN, EVAL, EXPORT, PREPROCESS, POSTPROCESS, INFER)
GROUPS = ("model", "data", "optimisation", "run", "export / inference")
NETWORK = (TRAIN, EVAL, EXPORT, INFER)  # the scripts that build the network

# Upper bounds a real run could need, and no more.
MAX_EPOCHS = 10_000
MAX_STEPS = 100_000  # steps of one epoch: CIFAR-10's 50,000 images at batch 1, twice over
MAX_BATCH = 4096  # per device: sknet50 at 32x32 needs about 10 GB for 1024 images
MAX_LR = 10.0


@dataclass(frozen=True)
class Key:
    """One config key: its rule (None: free text or a path, checked where it is used), its `--help` group,
    a one-line meaning, the scripts that read it, and the metavar of a text key."""
    rule: Range | Choice | Pattern | None
    group: str
    meaning: str
    scripts: tuple[str, ...]
    metavar: str = ""


def _positive(high: float, note: str = "") -> Range:
    return Range(1, high, note=note)


KEYS: dict[str, Key] = {
    # ---- model ----
    "arch": Key(Choice(("sknet50", "sknet_tiny")), "model",
                "the network; sknet_tiny has one unit per stage (tests, smoke runs)", NETWORK),
    "class_num": Key(Range(2, 100_000, note=" (a classifier needs two classes; 100000 covers ImageNet-21k)"),
                     "model", "number of classes", (*NETWORK, PREPROCESS)),
    "stem_type": Key(Choice(("imagenet", "cifar")), "model",
                     "imagenet: 7x7/2 conv + max-pool, for 224x224; cifar: 3x3/1 conv, no pool, for 32x32", NETWORK),
    # and the stem's minimum, in CROSS_CHECKS
    "image_size": Key(_positive(1024, " (CIFAR-10 images are 32x32)"), "model",
                      "inputs are resized to this square size", (*NETWORK, PREPROCESS)),
    "conv_impl": Key(Choice(CONV_IMPLS), "model",
                     "how convolutions are computed; auto: onednn on the CPU (fast without g++), native on GPU/Ascend",
                     NETWORK),
    "zero_init_last": Key(None, "model", "start each unit's last BN gamma at 0", (TRAIN,)),
    "drop_path_rate": Key(Range(0, 1, below=True, note=" (0 turns it off)"), "model",
                          "stochastic depth: the last unit's drop rate, rising linearly from 0 (training only)",
                          (TRAIN,)),
    # ---- data ----
    "data_path": Key(None, "data", "the CIFAR-10 binary data (README \"Dataset\")", (TRAIN, EVAL, PREPROCESS)),
    "eval_data_path": Key(None, "data", "the eval folder (null: found next to data_path)",
                          (TRAIN, EVAL, PREPROCESS)),
    "batch_size": Key(_positive(MAX_BATCH), "data", "training batch per device", (TRAIN,)),
    "eval_batch_size": Key(_positive(10_000, " (the CIFAR-10 test set)"), "data", "batch of the evaluation",
                           (TRAIN, EVAL)),
    "num_parallel_workers": Key(Range(0, _cpu_count, note=", this machine's CPU count (0 picks from it)"), "data",
                                "data workers", (TRAIN, EVAL, PREPROCESS)),
    "shuffle": Key(None, "data", "shuffle the training data", (TRAIN,)),
    "augment": Key(None, "data", "random crop 32 (padding 4) + horizontal flip", (TRAIN,)),
    "auto_augment": Key(Choice(("none", "cifar10", "randaugment")), "data",
                        "cifar10: AutoAugment with the CIFAR-10 policy; randaugment: RandAugment (training only)",
                        (TRAIN,)),
    "cutout": Key(Range(0, 32, note=" (pixels of the 32x32 image; 0 turns it off)"), "data",
                  "zero a random N x N square (training only)", (TRAIN,)),
    "randaugment_num_ops": Key(_positive(16), "data", "RandAugment: operations per image", (TRAIN,)),
    "randaugment_magnitude": Key(Range(0, 30, note=" (of 31 bins)"), "data", "RandAugment: their strength",
                                 (TRAIN,)),
    "mixup": Key(Range(0, 100, note=" (0 turns it off)"), "data",
                 "mixup's Beta(alpha, alpha) over whole batches, timm's (e.g. 0.8)", (TRAIN,)),
    "cutmix": Key(Range(0, 100, note=" (0 turns it off)"), "data",
                  "CutMix's Beta(alpha, alpha), area-corrected lambda, timm's (e.g. 1.0)", (TRAIN,)),
    "mixup_prob": Key(Range(0, 1), "data", "share of batches mixed; with both on, each picks one at even odds",
                      (TRAIN,)),
    "download": Key(None, "data", "fetch and verify the official archive into data_path's parent", (TRAIN,)),
    "download_url": Key(None, "data", "where --download fetches the archive from", (TRAIN,), "URL"),
    "download_md5": Key(Pattern(r"[0-9a-fA-F]{32}", "32 hex digits (an MD5)"), "data",
                        "the archive's MD5", (TRAIN,), "HEX"),
    "download_sha256": Key(Pattern(r"[0-9a-fA-F]{64}", "64 hex digits (a SHA-256) or null", optional=True), "data",
                           "also check the archive's SHA-256", (TRAIN,), "HEX"),
    "seed": Key(Range(0, 2 ** 32 - 1), "data", "seeds the weights and the data pipeline", (TRAIN,)),
    # ---- optimisation ----
    "epoch_size": Key(_positive(MAX_EPOCHS), "optimisation", "training epochs", (TRAIN,)),
    "optimizer": Key(Choice(("momentum", "nesterov", "adamw")), "optimisation",
                     "adamw: decoupled weight decay (try lr_max 0.001-0.003, weight_decay 0.05)", (TRAIN,)),
    "momentum": Key(Range(0, 1), "optimisation", "Momentum optimizer", (TRAIN,)),
    "weight_decay": Key(Range(0, 1), "optimisation", "not applied to BN parameters or biases", (TRAIN,)),
    "grad_clip_norm": Key(Range(0, 1e6, note=" (0 turns it off)"), "optimisation",
                          "clip the unscaled gradients to this global L2 norm", (TRAIN,)),
    "lr_init": Key(Range(0, MAX_LR), "optimisation", "LR at the start of the warm-up", (TRAIN,)),
    "lr_max": Key(Range(0, MAX_LR), "optimisation", "LR after the warm-up", (TRAIN,)),
    "lr_end": Key(Range(0, MAX_LR), "optimisation", "LR at the end", (TRAIN,)),
    "warmup_epochs": Key(Range(0, MAX_EPOCHS), "optimisation", "linear warm-up from lr_init to lr_max", (TRAIN,)),
    "lr_decay_mode": Key(Choice(("poly", "cosine", "linear", "steps")), "optimisation",
                         "the LR decay after the warm-up", (TRAIN,)),
    "lr_scale_with_devices": Key(None, "optimisation", "multiply the three LRs by the device count", (TRAIN,)),
    "label_smooth_factor": Key(Range(0, 1, below=True, note=" (0 turns it off)"), "optimisation",
                               "label smoothing of the cross-entropy", (TRAIN,)),
    "loss_scale": Key(Range(0, 2 ** 24, above=True), "optimisation",
                      "loss scale with mixed precision (the start value when dynamic)", (TRAIN,)),
    "loss_scale_type": Key(Choice(("auto", "fixed", "dynamic")), "optimisation",
                           "auto: dynamic on GPU/Ascend, fixed on the CPU; dynamic: an overflowing step is skipped "
                           "and the scale halves; fixed: the scale stays (the CPU stops at a NaN/inf loss)", (TRAIN,)),
    "max_skipped_steps": Key(Range(0, MAX_STEPS, note=" (0 stops at the first overflowing step)"), "optimisation",
                             "GPU/Ascend: stop after more overflowing (skipped) steps in a row than this", (TRAIN,)),
    "amp_level": Key(Choice(("auto", "O0", "O1", "O2", "O3")), "optimisation",
                     "auto: O2 on GPU/Ascend, O0 (fp32) on the CPU", (TRAIN, EVAL, INFER)),
    "ema_decay": Key(Range(0, 1, below=True, note=" (0 turns it off; e.g. 0.9999)"), "optimisation",
                     "EMA of the weights and BN statistics, used by the eval and best.ckpt", (TRAIN,)),
    # ---- run ----
    "device_target": Key(Choice(DEVICE_TARGET_CHOICES), "run",
                         "auto: Ascend, else GPU, else CPU, whichever this MindSpore can use", NETWORK),
    "device_id": Key(Range(0, 4095), "run", "the device of a single-device run", NETWORK),
    "run_distribute": Key(None, "run", "join the data-parallel group started by msrun", (TRAIN,)),
    "deterministic": Key(None, "run", "bit-identical weights from two runs with the same settings (slower)",
                         (TRAIN,)),
    "output_path": Key(None, "run", "the run folder: checkpoints, config.yaml, metrics.csv", (TRAIN,)),
    "checkpoint_path": Key(None, "run", "train: alias of output_path; eval, infer: a .ckpt, a folder or a .mindir; "
                           "preprocess: a run or checkpoint to take image_size and class_num from",
                           (TRAIN, EVAL, PREPROCESS, INFER)),
    "pre_trained": Key(None, "run", "a MindSpore .ckpt or timm .safetensors to start from", (TRAIN,)),
    "resume": Key(None, "run", "a .ckpt of this run, or auto for the newest valid one in output_path", (TRAIN,),
                  "PATH|auto"),
    "overwrite": Key(None, "run", "delete the run already in output_path instead of refusing to start", (TRAIN,)),
    "save_checkpoint_epochs": Key(_positive(MAX_EPOCHS), "run", "save a checkpoint every N epochs", (TRAIN,)),
    "keep_checkpoint_max": Key(Range(0, MAX_EPOCHS, note=" (0 keeps every checkpoint)"), "run",
                               "checkpoints kept", (TRAIN,)),
    "eval_interval": Key(Range(0, MAX_EPOCHS, note=" (0 turns it off)"), "run",
                         "evaluate every N epochs during training", (TRAIN,)),
    "log_interval": Key(Range(0, MAX_STEPS, note=" (0 turns it off)"), "run",
                        "a progress line every N steps inside an epoch", (TRAIN,)),
    # a divisor of the epoch: resolve_sink_size
    "sink_size": Key(Pattern(r"auto|[1-9][0-9]{0,4}|100000", f"auto or a whole number from 1 to {MAX_STEPS}"),
                     "run", "steps per host round trip, a divisor of the epoch; auto: 1 on the CPU, up to 50 on chips",
                     (TRAIN,), "auto|N"),
    "result_json": Key(None, "run", "also write the results to this JSON file", (EVAL, POSTPROCESS, INFER)),
    "use_ema": Key(None, "run", "take the EMA weights of a training checkpoint", (EVAL, EXPORT, INFER)),
    # ---- export / inference ----
    "ckpt_file": Key(None, "export / inference", "the checkpoint to export", (EXPORT,)),
    "file_name": Key(None, "export / inference", "the exported file's name without extension", (EXPORT,)),
    "file_format": Key(Choice(("MINDIR", "AIR", "ONNX")), "export / inference",
                       "AIR needs Ascend and is deprecated by MindSpore; Ascend 310 reads MINDIR", (EXPORT,)),
    "export_batch_size": Key(_positive(MAX_BATCH), "export / inference",
                             "the exported batch (--batch_size of export.py and preprocess.py)", (EXPORT, PREPROCESS)),
    "mindir_path": Key(None, "export / inference", "take the batch size, image size and class count from this MINDIR",
                       (PREPROCESS,)),
    "preprocess_output_path": Key(None, "export / inference",
                                  "where images/, labels.npy, meta.json go (preprocess.py --output_path)",
                                  (PREPROCESS,)),
    "result_path": Key(None, "export / inference", "the 310 app's result folder",
                       (POSTPROCESS,)),
    "label_path": Key(None, "export / inference", "labels.npy of preprocess.py; meta.json lies next to it",
                      (POSTPROCESS,)),
}
RULES: dict[str, Any] = {name: key.rule for name, key in KEYS.items()}


def keys_of(script: str | None) -> list[str]:
    """The keys `script` reads (every key when None: a Config built in code or a test)."""
    return [name for name, key in KEYS.items() if script is None or script in key.scripts]


def allowed(name: str, default: Any) -> str:
    """What `--help` says a key allows."""
    rule = KEYS[name].rule
    if rule is not None:
        return rule.describe()
    return "true or false" if isinstance(default, bool) else ""

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
    for key, allowed_values in problems:
        if allowed_values:
            raise UserError(f"--{names.get(key, key)} must be {allowed_values}, got {shown(values[key])}")


# ---- the original model-zoo flags ----

@dataclass(frozen=True)
class LegacyFlag:
    """A flag of the original model-zoo scripts: `apply(value, values, given)` sets the keys it stands for
    (`given`: the keys set on the command line) or refuses it in one line naming what to use instead."""
    metavar: str
    meaning: str
    apply: Callable[[str, dict[str, Any], set[str]], None]


def _false_only(flag: str, instead: str) -> Callable[[str, dict[str, Any], set[str]], None]:
    def apply(value: str, values: dict[str, Any], given: set[str]) -> None:
        if str(value).strip().lower() not in ("false", "0", "no", "off"):
            raise UserError(f"--{flag} {shown(value)}: {instead}")
    return apply


def _device_num(value: str, values: dict[str, Any], given: set[str]) -> None:
    """The device count comes from the launcher: msrun's --worker_num (MS_WORKER_NUM) or a rank table's
    RANK_SIZE; --device_num is accepted when it says the same."""
    if not re.fullmatch(r"[1-9][0-9]{0,3}", str(value)):
        raise UserError(f"--device_num must be a whole number from 1 to 9999, got {shown(value)}")
    count = int(value)
    launched = os.environ.get("MS_WORKER_NUM") or os.environ.get("RANK_SIZE")
    if not values.get("run_distribute"):
        if count != 1:
            raise UserError(f"--device_num {count} needs a data-parallel launch: start {count} processes with "
                            "scripts/run_distribute_train.sh (msrun) and --run_distribute true; the device count "
                            "comes from the launcher")
        return
    if launched is None:
        raise UserError(f"--device_num {count} with --run_distribute true, but no launcher set the process count "
                        "(MS_WORKER_NUM or RANK_SIZE); start with scripts/run_distribute_train.sh (msrun)")
    if str(launched) != str(count):
        raise UserError(f"--device_num {count} does not match the {launched} processes of this launch (msrun "
                        "--worker_num or RANK_SIZE); drop --device_num, the launcher sets the count")


def _image_side(flag: str) -> Callable[[str, dict[str, Any], set[str]], None]:
    def apply(value: str, values: dict[str, Any], given: set[str]) -> None:
        if not re.fullmatch(r"[0-9]{1,5}", str(value)):
            raise UserError(f"--{flag} must be a whole number (the image side; export.py takes --image_size), "
                            f"got {shown(value)}")
        side = int(value)
        if "image_size" in given and values["image_size"] != side:
            other = next((f"--{name}" for name in ("width", "height") if f"--{name}" in given), "--image_size")
            raise UserError(f"--{flag} {side} differs from {other} {values['image_size']}; the network takes "
                            "square images: pass --image_size alone")
        values["image_size"] = side
        given.update(("image_size", f"--{flag}"))
    return apply


def _label_dir(value: str, values: dict[str, Any], given: set[str]) -> None:
    # The original's label folder held one file per batch; preprocess.py writes one labels.npy (and
    # meta.json) into its output folder, so that folder is what --label_dir names here.
    values["label_path"] = os.path.join(str(value), "labels.npy")
    given.add("label_path")


LEGACY_FLAGS: dict[str, dict[str, LegacyFlag]] = {
    TRAIN: {
        "device_num": LegacyFlag("N", "accepted when it equals the process count of msrun / RANK_SIZE",
                                 _device_num),
        "run_modelarts": LegacyFlag("BOOL", "ModelArts is not supported; only false is accepted", _false_only(
            "run_modelarts", "ModelArts is not supported; run train.py directly (--data_url and --train_url work "
                             "as --data_path and --output_path)")),
        "parameter_server": LegacyFlag("BOOL", "parameter-server training is not supported; only false",
                                       _false_only("parameter_server", "parameter-server training is not "
                                                   "supported; use data-parallel training (--run_distribute true "
                                                   "under scripts/run_distribute_train.sh)")),
    },
    EXPORT: {
        "width": LegacyFlag("INT", "as --image_size; refused when it differs from --height or --image_size",
                            _image_side("width")),
        "height": LegacyFlag("INT", "as --image_size; refused when it differs from --width or --image_size",
                             _image_side("height")),
    },
    POSTPROCESS: {
        "label_dir": LegacyFlag("DIR", "preprocess.py's output folder: --label_path DIR/labels.npy", _label_dir),
    },
}
# Original flags that are plain aliases of a key, per script (--data_url works everywhere: config.ALIASES).
LEGACY_ALIASES: dict[str, dict[str, str]] = {
    TRAIN: {"train_url": "output_path"},
    POSTPROCESS: {"result_dir": "result_path"},
}
