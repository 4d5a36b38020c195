import os
import subprocess
import sys

import numpy as np
import mindspore as ms
import pytest
from safetensors.numpy import load_file, save_file

from src.convert_timm import convert_timm_state
from src.utils.errors import UserError
from src.sknet50 import sknet_tiny
from tests.helpers import REPO_ROOT

FIXTURE = os.path.join(REPO_ROOT, "tests", "fixtures", "timm_tiny")
WEIGHTS = os.path.join(FIXTURE, "weights.safetensors")


def test_converted_weights_reproduce_timm_logits():
    net = sknet_tiny(10)
    converted, skipped = convert_timm_state(load_file(WEIGHTS), net)
    assert skipped == []
    ms.load_param_into_net(net, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in converted.items()},
                           strict_load=True)
    net.set_train(False)
    logits = net(ms.Tensor(np.load(os.path.join(FIXTURE, "input.npy")))).asnumpy()
    expected = np.load(os.path.join(FIXTURE, "logits.npy"))
    assert np.abs(logits - expected).max() < 1e-4
    # The fixture is not degenerate: its logits differ between images and classes.
    assert expected.std() > 1e-2


def test_other_class_count_skips_only_the_classifier():
    converted, skipped = convert_timm_state(load_file(WEIGHTS), sknet_tiny(7))
    assert skipped == ["fc.weight", "fc.bias"]
    assert len(converted) == len(list(sknet_tiny(7).get_parameters())) - 2


def test_mismatched_shape_is_refused():
    tensors = load_file(WEIGHTS)
    tensors["layer2.0.conv1.conv.weight"] = np.zeros((3, 3, 1, 1), np.float32)
    with pytest.raises(UserError, match="shape mismatch for 'layer2.0.conv1.conv.weight'"):
        convert_timm_state(tensors, sknet_tiny(10))


def test_unknown_and_missing_names_are_refused():
    tensors = load_file(WEIGHTS)
    tensors["head.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(UserError, match="head.extra.weight"):
        convert_timm_state(tensors, sknet_tiny(10))
    tensors = load_file(WEIGHTS)
    del tensors["layer3.0.conv2.attn.fc_select.weight"]
    with pytest.raises(UserError, match="layer3.0.sk_conv.attention.fc_select.weight"):
        convert_timm_state(tensors, sknet_tiny(10))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "src.convert_timm", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_writes_a_checkpoint_that_loads(tmp_path):
    dst = tmp_path / "tiny.ckpt"
    result = run_cli(WEIGHTS, str(dst), "--arch", "sknet_tiny", "--class_num", "5")
    assert result.returncode == 0, result.stderr
    assert "skipped the classifier" in result.stdout
    params = ms.load_checkpoint(str(dst))
    assert "fc.weight" not in params and "stem.conv.weight" in params
    # The checkpoint and its integrity sidecar (src/checkpoint.py), and no temp file left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.ckpt", "tiny.ckpt.json"]


@pytest.mark.slow
def test_cli_refuses_wrong_architecture_in_one_line(tmp_path):
    result = run_cli(WEIGHTS, str(tmp_path / "x.ckpt"))  # tiny weights into full SKNet-50
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: ") and "Traceback" not in result.stderr
    assert not (tmp_path / "x.ckpt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("content", [None, b"not a safetensors file at all"])
def test_cli_refuses_missing_or_broken_file(tmp_path, content):
    src = tmp_path / "w.safetensors"
    if content is not None:
        src.write_bytes(content)
    result = run_cli(str(src), str(tmp_path / "x.ckpt"))
    assert result.returncode == 1
    assert "w.safetensors" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_refuses_non_float_dtype(tmp_path):
    src = tmp_path / "int.safetensors"
    save_file({"fc.weight": np.zeros((10, 4), np.int64)}, str(src))
    result = run_cli(str(src), str(tmp_path / "x.ckpt"), "--arch", "sknet_tiny")
    assert result.returncode == 1 and "Traceback" not in result.stderr
