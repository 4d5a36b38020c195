"""`conv_impl onednn` computes what `native` computes, and its C++ op is built once, into the right place.

Tolerances: outputs and input gradients as for every conv_impl (`check_matches_native`: 1e-4 x
max(1, max |native|)). Weight gradients: 1e-5 x max |native dw|. oneDNN sums a weight gradient's
N*Ho*Wo products in another order than MindSpore's NCHW kernel; on these cases the measured error
was at most 6.4e-7 x max |dw|, and 3e-6 at 56x56, batch 32.
The whole-network check is `test_conv_impl.test_whole_network_logits_and_gradients_match[onednn]`,
and the folded-BatchNorm one is `test_inference_form`'s `onednn` case.
"""
import os
import types

import numpy as np
import mindspore as ms
import pytest
from mindspore import nn

import export
from src.layers.conv import Conv2d
from src.layers.cpu import ops_library
from src.layers.cpu.onednn_conv import OneDnnConv, OneDnnPointwiseConv
from src.layers.create_layers import create_layers
from src.sknet50 import create_model
from src.training.build import split_weight_decay
from src.training.loss import CrossEntropySmooth
from src.utils.device import resolve_conv_impl
from src.utils.errors import UserError
from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.processes import run_entry
from tests.helpers.tiny_runs import TINY
from tests.helpers.conv_checks import check_matches_native

WEIGHT_GRADIENT_TOLERANCE = 1e-5

# (in, out, kernel, stride, dilation, groups), image size: SKNet-50's conv classes that onednn computes.
CASES = [
    ((128, 128, 3, 1, 1, 32), 8),  # the SK unit's first path
    ((128, 128, 3, 1, 2, 32), 8),  # its second path, dilation 2
    ((256, 256, 3, 2, 1, 32), 8),  # a stage's strided first unit
    ((256, 256, 3, 2, 2, 32), 7),  # strided and dilated, odd size
    ((128, 128, 3, 1, 2, 32), 2),  # tiny maps: the dilated taps fall in the padding
    ((256, 256, 3, 2, 1, 32), 2),
    ((128, 128, 3, 1, 1, 32), 1),
    ((3, 64, 7, 2, 1, 1), 16),  # the ImageNet stem
    ((32, 64, 3, 1, 1, 1), 6),  # an ungrouped 3x3 (the deep/CIFAR stems' kind)
    ((3, 32, 3, 2, 1, 1), 9),
    ((64, 128, 1, 1, 1, 1), 2),  # ungrouped 1x1 convs of fewer than 16 output pixels: OneDnnPointwiseConv
    ((64, 128, 1, 1, 1, 1), 1),
    ((48, 32, 1, 1, 1, 1), 3),
    ((64, 96, 1, 2, 1, 1), 3),  # strided: 3x3 -> 2x2, the skipped pixels' gradient is 0
    ((32, 64, 1, 2, 1, 1), 2),  # strided to one pixel
]


@pytest.mark.parametrize("shape, size", [pytest.param(s, n, id=f"{'x'.join(map(str, s))}-{n}px") for s, n in CASES])
def test_onednn_conv_matches_native(shape, size):
    check_matches_native(shape, size, "onednn", weight_gradient_tolerance=WEIGHT_GRADIENT_TOLERANCE)


def test_ungrouped_pointwise_convs_take_the_gemm_op():
    onednn = create_layers("onednn")
    assert isinstance(Conv2d(64, 128, 1, 2, layers=onednn).compute.onednn, OneDnnPointwiseConv)
    assert isinstance(Conv2d(64, 128, 1, 1, groups=32, layers=onednn).compute.onednn, OneDnnConv)
    assert isinstance(Conv2d(64, 128, 3, 1, layers=onednn).compute.onednn, OneDnnConv)


def test_float16_is_refused_with_one_line():
    conv = Conv2d(8, 8, 3, layers=create_layers("onednn"))
    conv.to_float(ms.float16)
    with pytest.raises(UserError, match="float32 only.*--amp_level O0"):
        conv(ms.Tensor(np.zeros((1, 8, 4, 4), np.float16)))


def test_onednn_is_cpu_only():
    assert resolve_conv_impl("onednn", "CPU") == "onednn"
    for device in ("GPU", "Ascend"):
        with pytest.raises(UserError, match=f"conv_impl onednn .* is CPU-only; on {device} use --conv_impl auto"):
            resolve_conv_impl("onednn", device)


def test_onednn_is_not_exported():
    cfg = types.SimpleNamespace(conv_impl="onednn", file_format="MINDIR", device_target="CPU")
    with pytest.raises(UserError, match="onednn cannot be exported"):
        export.exported_conv_impl(cfg)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty build cache, and no library remembered from an earlier call."""
    monkeypatch.setenv("SKNET_ONEDNN_CACHE", str(tmp_path / "cache"))
    ops_library.onednn_library.cache_clear()
    yield tmp_path / "cache"
    ops_library.onednn_library.cache_clear()


def test_the_second_load_reuses_the_build(fresh_cache):
    path = ops_library.onednn_library()
    assert os.path.dirname(path) == str(fresh_cache) and path.endswith(".so")
    built = os.stat(path)
    ops_library.onednn_library.cache_clear()
    assert ops_library.onednn_library() == path
    assert os.stat(path).st_mtime_ns == built.st_mtime_ns and os.stat(path).st_ino == built.st_ino
    assert os.listdir(fresh_cache) == [os.path.basename(path)]  # no temporary file or log is left behind


@pytest.mark.parametrize("group, index", [*(("SOURCES", i) for i in range(len(ops_library.SOURCES))),
                                          *(("LOCAL_HEADERS", i) for i in range(len(ops_library.LOCAL_HEADERS)))])
def test_a_changed_source_builds_a_separate_library(fresh_cache, tmp_path, monkeypatch, group, index):
    first = ops_library.onednn_library()
    sources = list(getattr(ops_library, group))
    changed = tmp_path / os.path.basename(sources[index])
    with open(sources[index], encoding="utf-8") as source:
        changed.write_text(source.read() + "\n// changed\n", encoding="utf-8")
    sources[index] = str(changed)
    monkeypatch.setattr(ops_library, group, tuple(sources))
    ops_library.onednn_library.cache_clear()
    second = ops_library.onednn_library()
    assert second != first and os.path.isfile(first) and os.path.isfile(second)


def test_no_compiler_is_one_clear_line(fresh_cache, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with pytest.raises(UserError) as caught:
        ops_library.onednn_library()
    message = str(caught.value)
    assert "\n" not in message and "needs g++ (C++17)" in message and "apt-get install g++" in message
    assert "--conv_impl fast" in message


def test_a_compile_failure_names_its_log(fresh_cache, tmp_path, monkeypatch):
    broken = tmp_path / "onednn_conv.cc"
    broken.write_text("this is not C++\n", encoding="utf-8")
    monkeypatch.setattr(ops_library, "SOURCES", (str(broken), *ops_library.SOURCES[1:]))
    with pytest.raises(UserError, match=r"failed .*output is in .*\.log") as caught:
        ops_library.onednn_library()
    log = str(caught.value).split("output is in ")[1].split(";")[0]
    assert "error" in open(log, encoding="utf-8").read()
    assert not [name for name in os.listdir(fresh_cache) if name.endswith((".so", ".tmp"))]


def test_another_onednn_version_is_refused(monkeypatch):
    monkeypatch.setattr(ops_library, "ONEDNN_VERSION", (3, 9))
    with pytest.raises(UserError, match=r"written for oneDNN 3\.9 .* bundles oneDNN 3\.10\.1"):
        ops_library.mindspore_libdnnl()


def test_a_mindspore_without_libdnnl_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(ms, "__file__", str(tmp_path / "mindspore" / "__init__.py"))
    with pytest.raises(UserError, match=f"MindSpore {ms.__version__} has no .*libdnnl.so.3.*--conv_impl fast"):
        ops_library.mindspore_libdnnl()


def test_the_training_graph_copies_no_weights(tmp_path):
    """The custom ops carry their gradients (onednn_conv.name_apart): with a Cell bprop instead, MindSpore loads
    each weight again for the weight decay and copies both loads (`TensorMove`) every step."""
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(0)
    net = create_model("sknet_tiny", 10, stem_type="imagenet", conv_impl="onednn")
    optimizer = nn.Momentum(split_weight_decay(net.trainable_params(), 1e-4), 0.01, 0.9)
    step = nn.TrainOneStepCell(nn.WithLossCell(net, CrossEntropySmooth(0.1, 10)), optimizer)
    step.set_train(True)
    images = ms.Tensor(np.zeros((2, 3, 32, 32), np.float32))
    ms.set_context(save_graphs=True, save_graphs_path=str(tmp_path))
    try:
        step.compile(images, ms.Tensor(np.zeros(2, np.int32)))
    finally:
        ms.set_context(save_graphs=False)
    final = max((os.path.join(root, name) for root, _, names in os.walk(tmp_path) for name in names
                 if name.startswith("graph_build_")), key=os.path.getmtime)
    with open(final, encoding="utf-8") as graph:
        copies = graph.read().count("= TensorMove(")
    assert copies == 0, f"the training graph copies weights {copies} times per step"


@pytest.mark.slow
def test_train_py_trains_with_onednn_and_reports_a_missing_compiler(tmp_path):
    data = write_cifar_layout(str(tmp_path / "data"), per_train_file=8, test_count=8)
    flags = [*TINY, "--data_path", data, "--conv_impl", "onednn", "--epoch_size", "1"]
    done = run_entry("train.py", [*flags, "--output_path", str(tmp_path / "run")])
    assert done.returncode == 0, done.stderr[-2000:]
    assert any(name.endswith(".ckpt") for _, _, names in os.walk(tmp_path / "run") for name in names)
    failed = run_entry("train.py", [*flags, "--output_path", str(tmp_path / "no_cxx")],
                       env={"CXX": "/nonexistent/g++", "SKNET_ONEDNN_CACHE": str(tmp_path / "empty_cache")})
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "needs g++ (C++17)" in errors[0] and "Traceback" not in failed.stderr
