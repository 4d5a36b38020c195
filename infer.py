"""Classify PNG/JPEG files with a trained SKNet: the top-5 classes and their probabilities.

    python infer.py --checkpoint_path ./output photo.png more_photos/
    python infer.py --checkpoint_path ./output/best.ckpt --result_json top5.json cat.jpg
    python infer.py --checkpoint_path sknet50.mindir --device_target CPU images/

--checkpoint_path takes a run folder (its best.ckpt), a .ckpt or a .mindir; the network's arch, stem,
image size and classes come from the checkpoint's record. Images get evaluation's preprocessing.
A file that cannot be read is a one-line error naming it; the others are still classified (exit code 1).
"""
import sys

from src.utils.device import check_device_choices, set_up_device  # first: it quiets MindSpore's log before MindSpore loads
from src.utils.config import load_config
from src.utils.errors import run_cli


def split_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """(flags with their values, image paths): every flag takes one value (`--key value` or `--key=value`)."""
    flags, paths = [], []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token.startswith("--") and "=" not in token and token not in ("--help",):
            flags += argv[index:index + 2]
            index += 2
            continue
        (flags if token.startswith("-") else paths).append(token)
        index += 1
    return flags, paths


def main() -> int:
    flags, paths = split_arguments(sys.argv[1:])
    cfg = load_config(flags, description=__doc__, script="infer")
    check_device_choices(cfg)
    # Imported once the flags are valid: a bad flag fails before MindSpore loads (seconds).
    from src.evaluation.infer_files import infer

    return infer(cfg, paths, set_up_device(cfg.device_target, cfg.device_id))


if __name__ == "__main__":
    run_cli(main)
