"""Train SKNet-50 on CIFAR-10.

    python train.py --data_path ./data/cifar-10-batches-bin --device_target GPU
    python train.py --config_path my.yaml --resume auto

Every key of config/sknet50_cifar10.yaml is a flag; see README "Training process".
"""
from src.utils.device import check_device_choices, set_up_device  # first: it quiets MindSpore's log before MindSpore loads
from src.utils.config import load_config
from src.utils.errors import run_cli


def main() -> int:
    cfg = load_config(description=__doc__.splitlines()[0])
    check_device_choices(cfg)
    # Imported once the flags are valid: a bad flag fails before MindSpore loads (seconds).
    from src.training.trainer import train

    train(cfg, set_up_device(cfg.device_target, cfg.device_id, cfg.run_distribute, cfg.deterministic))
    return 0


if __name__ == "__main__":
    run_cli(main)
