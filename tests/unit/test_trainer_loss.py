"""The training loss is the one the config asks for: `label_smooth_factor` reaches the optimizer's loss.

One real epoch of the tiny network with every learning rate 0 (the weights never move), then the
logged epoch loss is recomputed from the network's own logits on the same batches.
"""
import csv

import mindspore as ms
import numpy as np
import pytest

from src.data.pipeline import create_dataset
from src.training.trainer import Trainer
from src.utils.config import load_config
from src.utils.device import Placement
from tests.helpers.cifar_data import write_cifar_layout

SMOOTH = 0.4


def _log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@pytest.mark.slow
def test_label_smooth_factor_reaches_the_training_loss(tmp_path):
    data = write_cifar_layout(str(tmp_path / "data"), per_train_file=4, test_count=4)
    cfg = load_config(["--device_target", "CPU", "--arch", "sknet_tiny", "--stem_type", "cifar", "--image_size", "32",
                       "--batch_size", "4", "--shuffle", "false", "--augment", "false", "--epoch_size", "1",
                       "--warmup_epochs", "0", "--lr_init", "0", "--lr_max", "0", "--lr_end", "0",
                       "--eval_interval", "0", "--num_parallel_workers", "1", "--label_smooth_factor", str(SMOOTH),
                       "--data_path", data, "--output_path", str(tmp_path / "out")])
    trainer = Trainer(cfg, Placement("CPU"))
    trainer.run()
    with open(tmp_path / "out" / "metrics.csv", newline="") as handle:
        logged = float(next(csv.DictReader(handle))["loss"])

    net = trainer.net
    net.set_train(True)  # the training step's BatchNorm uses the statistics of each batch
    smoothed, plain = [], []
    batches = create_dataset(data, "train", 4, 32, shuffle=False, augment=False, num_parallel_workers=1)
    for images, labels in batches.create_tuple_iterator(num_epochs=1, output_numpy=True):
        log_probs = _log_softmax(net(ms.Tensor(images)).asnumpy().astype(np.float64))
        true_class = -log_probs[np.arange(len(labels)), labels]
        plain.append(true_class.mean())
        smoothed.append(((1 - SMOOTH) * true_class - SMOOTH * log_probs.mean(axis=1)).mean())
    assert len(smoothed) == 5
    assert abs(np.mean(smoothed) - np.mean(plain)) > 1e-3, "the factor must make a visible difference here"
    assert logged == pytest.approx(np.mean(smoothed), abs=1e-5)
