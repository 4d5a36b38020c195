"""Evaluate SKNet-50 checkpoints on the whole CIFAR-10 test set.

    python eval.py --data_path ./data/cifar-10-batches-bin --checkpoint_path ./output
    python eval.py --checkpoint_path ./output/best.ckpt --result_json results.json

--checkpoint_path takes a .ckpt file, a folder of them (evaluated in natural order, ending with
a table and the best one) or a .mindir file. See README "Evaluation process".
"""
# first: it quiets MindSpore's log before MindSpore loads
from src.utils.device import check_device_choices, conv_impl_hint, set_up_device
from src.utils.config import load_config
from src.utils.errors import run_cli


def main() -> int:
    cfg = load_config(description=__doc__, script="eval")
    check_device_choices(cfg)
    # Imported once the flags are valid: a bad flag fails before MindSpore loads (seconds).
    from src.evaluation.eval_checkpoints import evaluate_checkpoints

    with conv_impl_hint(cfg.conv_impl, cfg.device_target):
        return evaluate_checkpoints(cfg, set_up_device(cfg.device_target, cfg.device_id))


if __name__ == "__main__":
    run_cli(main)
