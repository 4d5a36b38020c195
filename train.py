"""Train SKNet-50 on CIFAR-10.

    python train.py --data_path ./data/cifar-10-batches-bin
    python train.py --device_target CPU --arch sknet_tiny --stem_type cifar --image_size 32 --output_path ./out
    python train.py --config_path my.yaml --resume auto

--device_target auto (the default) takes Ascend, else GPU, else CPU. See README "Training process".
"""
from src.training.stop_signals import StopRequest  # first: SIGTERM/Ctrl-C are taken over before anything loads
from src.utils.errors import run_cli


def main() -> int:
    with StopRequest() as stop:
        # Imported under the stop request, so a Ctrl-C while they load stops cleanly. The device module
        # comes first: it quiets MindSpore's log before MindSpore loads.
        from src.utils.device import check_device_choices, conv_impl_hint, set_up_device
        from src.utils.config import load_config

        cfg = load_config(description=__doc__, script="train")
        check_device_choices(cfg)
        if not cfg.run_distribute:  # ranks decide together, once they can talk (Trainer.run)
            stop.check("during start-up, before training")
        # Imported once the flags are valid: a bad flag fails before MindSpore loads (seconds).
        from src.training.trainer import train

        with conv_impl_hint(cfg.conv_impl, cfg.device_target):
            train(cfg, set_up_device(cfg.device_target, cfg.device_id, cfg.run_distribute, cfg.deterministic), stop)
    return 0


if __name__ == "__main__":
    run_cli(main)
