"""What a run is built from: the weight-decay groups of a real network and each rank's training shard."""
import pytest

from src.sknet50 import create_model
from src.training.build import build_datasets, split_weight_decay
from src.utils.config import load_config
from src.utils.device import Placement
from tests.helpers.cifar_data import write_cifar_layout


def test_weight_decay_applies_to_conv_and_dense_weights_only():
    net = create_model("sknet_tiny", 10, stem_type="cifar")
    params = net.trainable_params()
    decay, no_decay, order = split_weight_decay(params, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    # Every multi-dimensional tensor (conv kernels, the fc matrix) decays; every vector
    # (BatchNorm gamma/beta, the fc bias) does not.
    assert {p.name for p in decay["params"]} == {p.name for p in params if len(p.shape) > 1}
    assert {p.name for p in no_decay["params"]} == {p.name for p in params if len(p.shape) == 1}
    assert {"fc.bias", "stem.bn.gamma", "stem.bn.beta"} <= {p.name for p in no_decay["params"]}
    assert {"fc.weight", "stem.conv.weight"} <= {p.name for p in decay["params"]}
    assert [p.name for p in order["order_params"]] == [p.name for p in params]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar_layout(str(tmp_path_factory.mktemp("data")), per_train_file=3, test_count=4)


def _train_images(data, rank_id, rank_size):
    cfg = load_config(["--device_target", "CPU", "--data_path", data, "--image_size", "32", "--batch_size", "1",
                       "--shuffle", "false", "--augment", "false", "--eval_interval", "0",
                       "--num_parallel_workers", "1"])
    train, evaluation = build_datasets(cfg, Placement("CPU", rank_id, rank_size), print)
    assert evaluation is None
    return [images.tobytes() for images, _ in train.create_tuple_iterator(output_numpy=True, num_epochs=1)]


@pytest.mark.parametrize("rank_size", [2, 3])
def test_each_rank_of_a_run_trains_on_its_own_shard(data, rank_size):
    """15 training records: rank r of N gets records r, r+N, ... (the run's settings reach the shard)."""
    everything = _train_images(data, 0, 1)
    usable = len(everything) - len(everything) % rank_size
    for rank in range(rank_size):
        assert _train_images(data, rank, rank_size) == everything[rank:usable:rank_size], f"rank {rank}"


def _eval_images(data, rank_id, rank_size):
    cfg = load_config(["--device_target", "CPU", "--data_path", data, "--image_size", "32", "--eval_batch_size", "3",
                       "--num_parallel_workers", "1"])
    _, evaluation = build_datasets(cfg, Placement("CPU", rank_id, rank_size), print)
    return [image.tobytes() for images, _ in evaluation.create_tuple_iterator(output_numpy=True, num_epochs=1)
            for image in images]


@pytest.mark.parametrize("rank_size", [2, 3])
def test_each_rank_evaluates_its_own_shard_and_together_every_image_once(data, rank_size):
    """4 eval records: rank r of N gets records r, r+N, ...; a short shard is not padded with repeats."""
    everything = _eval_images(data, 0, 1)
    assert len(everything) == 4
    for rank in range(rank_size):
        assert _eval_images(data, rank, rank_size) == everything[rank::rank_size], f"rank {rank}"
