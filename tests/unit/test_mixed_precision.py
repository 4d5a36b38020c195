"""The GPU/Ascend training cells, built on the CPU: mixed precision (O2/O3) and the overflow-checked step.

The CPU has no fp16 convolutions and no float-status registers, so these tests construct the cells
that GPU and Ascend runs use and check their structure (which layers compute in fp32, parameter
names, the overflow check); where a cell can run on the CPU in fp32, they run it.
"""
import numpy as np
import mindspore as ms
import pytest
from mindspore import nn

from src.evaluation.eval_checkpoints import CheckpointEvaluator
from src.sknet50 import sknet_tiny
from src.training.build import build_optimizer
from src.training.loss import CrossEntropySmooth
from src.training.sunk_steps import SinkTotals, SunkSteps, check_finite
from src.training.train_step import OverflowCheckedStep, TrainingDiverged, TrainStep
from src.utils.config import load_config
from src.utils.device import Placement

NORMALIZATION = (nn.BatchNorm1d, nn.BatchNorm2d)


def train_step_for(device_target: str, amp_level: str, loss_scale_type: str, loss_scale: float = 1024.0):
    cfg = load_config(["--loss_scale_type", loss_scale_type])
    net = sknet_tiny(10, conv_impl="split" if device_target == "Ascend" else "native")
    optimizer = build_optimizer(cfg, net, np.full(4, 0.1, np.float32), loss_scale, device_target)
    step = TrainStep(net, optimizer, CrossEntropySmooth(0.1, 10), amp_level, loss_scale_type, loss_scale,
                     device_target)
    return net, optimizer, step


def precision_of(cell: nn.Cell) -> str:
    flags = cell.get_flags()
    return "fp32" if flags.get("fp32") else "fp16" if flags.get("fp16") else "unset"


@pytest.mark.parametrize("device_target", ["GPU", "Ascend"])
@pytest.mark.parametrize("amp_level", ["O2", "O3"])
@pytest.mark.parametrize("loss_scale_type", ["fixed", "dynamic"])
def test_mixed_precision_train_cell_keeps_bn_in_fp32_at_o2_and_the_parameter_names(
        device_target, amp_level, loss_scale_type):
    fresh_names = [p.name for p in sknet_tiny(10).get_parameters()]
    net, optimizer, step = train_step_for(device_target, amp_level, loss_scale_type)
    # the checked step (overflow found by the device) on GPU/Ascend for both scale types
    assert isinstance(step.cell, OverflowCheckedStep)
    assert not step.cell.check_on_host_kernels
    assert optimizer.loss_scale == 1.0  # the checked step unscales; the optimizer must not do it again
    cells = dict(net.cells_and_names())
    normalization = [name for name, cell in cells.items() if isinstance(cell, NORMALIZATION)]
    compute = [name for name, cell in cells.items() if isinstance(cell, (nn.Dense,)) or type(cell).__name__ == "Conv2d"]
    assert len(normalization) > 10 and len(compute) > 10
    expected_bn = "fp32" if amp_level == "O2" else "fp16"
    assert {name: precision_of(cells[name]) for name in normalization} == dict.fromkeys(normalization, expected_bn)
    assert {name: precision_of(cells[name]) for name in compute} == dict.fromkeys(compute, "fp16")
    # checkpoints keep their names: the net, and the parameters the optimizer updates
    assert [p.name for p in net.get_parameters()] == fresh_names
    assert [p.name for p in step.cell.weights] == [p.name for p in net.trainable_params()]
    assert {p.name for p in step.cell.network.get_parameters()} == set(fresh_names)


def test_the_plain_cpu_step_is_kept_for_a_fixed_scale_on_the_cpu():
    _, optimizer, step = train_step_for("CPU", "O0", "fixed", 1.0)
    assert not isinstance(step.cell, OverflowCheckedStep) and optimizer.loss_scale == 1.0
    _, _, dynamic = train_step_for("CPU", "O0", "dynamic")
    assert isinstance(dynamic.cell, OverflowCheckedStep) and dynamic.cell.check_on_host_kernels


@pytest.mark.parametrize("device_target, amp_level", [("GPU", "O2"), ("Ascend", "O2"), ("Ascend", "O3")])
def test_mixed_precision_eval_network_keeps_the_parameter_names(device_target, amp_level):
    cfg = load_config(["--arch", "sknet_tiny", "--stem_type", "cifar", "--amp_level", amp_level,
                       "--device_target", device_target])
    evaluator = CheckpointEvaluator(cfg, Placement(device_target))
    evaluator._build()
    net = evaluator._predict.net  # the inference form: BatchNorm folded into the convs
    assert type(net).__name__ == "_OutputTo32"  # logits come back in fp32 for top-k and the loss
    assert [p.name for p in net.get_parameters()] == [p.name for p in sknet_tiny(10, fold_bn=True).get_parameters()]
    assert not [cell for _, cell in net.cells_and_names() if isinstance(cell, nn.BatchNorm2d)]


@pytest.mark.parametrize("device_target, dynamic, plain", [("GPU", True, False), ("Ascend", True, False),
                                                           ("CPU", False, True)])
def test_auto_is_a_dynamic_scale_on_a_chip_and_the_plain_fixed_step_on_the_cpu(device_target, dynamic, plain):
    assert load_config([]).loss_scale_type == "auto"
    amp_level = "O0" if device_target == "CPU" else "O2"
    _, optimizer, step = train_step_for(device_target, amp_level, "auto")
    assert step.dynamic == dynamic and isinstance(step.cell, OverflowCheckedStep) != plain
    if dynamic:
        assert isinstance(step.cell.scale_sense, ms.Parameter)  # the scale the dynamic update cell halves and grows
        assert float(step.cell.scale_sense.asnumpy()) == 1024.0 and optimizer.loss_scale == 1.0


def test_a_nan_loss_of_an_applied_step_stops_the_run():
    with pytest.raises(TrainingDiverged, match="the loss became nan at epoch 1 steps 1-5/5; the weights are broken"):
        check_finite(SinkTotals(float("nan"), 5, 0, 1, 1.0), "epoch 1 steps 1-5/5", None, max_skipped_steps=100)


def batch(seed: int, nan: bool = False):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    if nan:
        images[0, 0, 0, 0] = np.nan
    return ms.Tensor(images), ms.Tensor(rng.integers(0, 10, 4).astype(np.int32))


def weights_of(net):
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}


@pytest.mark.slow
def test_the_fixed_scale_checked_step_of_a_chip_trains_like_the_cpu_step_and_refuses_a_nan_batch():
    """The GPU cell in fp32 on the CPU, its float-status check replaced by the CPU's isfinite check."""
    ms.set_seed(1)
    plain_net, _, plain = train_step_for("CPU", "O0", "fixed", 1.0)
    checked_net, _, checked = train_step_for("GPU", "O0", "fixed", 1024.0)
    ms.load_param_into_net(checked_net, {n: ms.Parameter(v, n) for n, v in weights_of(plain_net).items()})
    checked.cell.check_on_host_kernels = True  # the CPU has no FloatStatus kernel
    plain, checked = SunkSteps(plain, None), SunkSteps(checked, None)
    for step in (plain, checked):
        step.set_train(True)
        for seed in (1, 2):
            step(*batch(seed))
        assert step.read_totals().applied == 2
    for name, value in weights_of(plain_net).items():  # scale 1024 in, 1/1024 out: exact in fp32
        np.testing.assert_allclose(weights_of(checked_net)[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    before = weights_of(checked_net)
    checked(*batch(3, nan=True))
    result = checked.read_totals()
    assert (result.applied, result.skipped, result.longest_run, result.at_floor) == (0, 1, 1, 0)  # fixed: no floor
    with pytest.raises(TrainingDiverged, match="1 step in a row overflowed"):
        check_finite(result, "epoch 1 step 3/3", None, max_skipped_steps=0)
    for name, value in weights_of(checked_net).items():
        np.testing.assert_array_equal(value, before[name], err_msg=f"{name} changed by a refused step")
