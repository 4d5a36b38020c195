"""export.py: strict checkpoint loading, MINDIR and ONNX files that reproduce the network, clear errors."""
import re

import numpy as np
import mindspore as ms
import onnxruntime
import pytest
from mindspore import nn

import export
from src.utils.config import load_config
from src.utils.checkpoint_file import assign_parameters, load_checkpoint_file, match_network
from src.utils.errors import UserError
from src.utils.mindir import mindir_input_shape
from src.utils.run_settings import follow_run
from src.sknet50 import create_model
from tests.helpers.infer import TINY_FLAGS, save_tiny_checkpoint


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return save_tiny_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"))


def tiny_network(ckpt: str, conv_impl: str = "native"):
    net = create_model("sknet_tiny", 10, stem_type="cifar", conv_impl=conv_impl)
    values, _ = match_network(net, load_checkpoint_file(ckpt)[0], ckpt)
    assign_parameters({param.name: param for param in net.get_parameters()}, values)
    net.set_train(False)
    return net


@pytest.mark.slow
def test_onnx_export_runs_in_onnxruntime_and_matches(tiny_ckpt, tmp_path, capsys):
    export.main(["--ckpt_file", tiny_ckpt, "--file_name", str(tmp_path / "tiny"), "--file_format", "ONNX",
                 "--batch_size", "2", *TINY_FLAGS])
    assert "max |exported - network|" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    onnx_logits = session.run(None, {session.get_inputs()[0].name: images})[0]
    expected = tiny_network(tiny_ckpt)(ms.Tensor(images)).asnumpy()
    assert onnx_logits.shape == (2, 10)
    np.testing.assert_allclose(onnx_logits, expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_mindir_has_the_asked_batch_and_reproduces_the_network(tiny_ckpt, tmp_path):
    export.main(["--ckpt_file", tiny_ckpt, "--file_name", str(tmp_path / "tiny"), "--batch_size", "3", *TINY_FLAGS])
    path = str(tmp_path / "tiny.mindir")
    assert mindir_input_shape(path) == (3, 3, 32, 32)
    images = np.random.default_rng(2).standard_normal((3, 3, 32, 32)).astype(np.float32)
    exported = nn.GraphCell(ms.load(path))(ms.Tensor(images)).asnumpy()
    # conv_impl=auto exports the portable native conv, whatever the exporting device. BatchNorm is folded
    # into the convs, which changes float rounding only (~1e-7 here).
    np.testing.assert_allclose(exported, tiny_network(tiny_ckpt, "native")(ms.Tensor(images)).asnumpy(),
                               atol=1e-5, rtol=0)


@pytest.mark.slow
def test_fast_conv_export_only_on_request(tiny_ckpt, tmp_path):
    export.main(["--ckpt_file", tiny_ckpt, "--file_name", str(tmp_path / "fast"), "--conv_impl", "fast", *TINY_FLAGS])
    images = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    exported = nn.GraphCell(ms.load(str(tmp_path / "fast.mindir")))(ms.Tensor(images)).asnumpy()
    np.testing.assert_allclose(exported, tiny_network(tiny_ckpt, "native")(ms.Tensor(images)).asnumpy(), atol=1e-4)
    with pytest.raises(UserError, match="cannot be exported as ONNX"):
        export.main(["--ckpt_file", tiny_ckpt, "--file_name", str(tmp_path / "f"), "--conv_impl", "fast",
                     "--file_format", "ONNX", *TINY_FLAGS])


@pytest.mark.parametrize("flags, match", [
    (["--file_format", "AIR"], "AIR export needs an Ascend device"),
    (["--file_format", "TFLITE"], "--file_format must be one of MINDIR | AIR | ONNX, got 'TFLITE'"),
    (["--file_format", "AIR", "--device_target", "Ascend"], "not available in this MindSpore"),
    (["--class_num", "7"], "fc.weight has shape"),
    (["--stem_type", "imagenet"], "stem.conv.weight has shape"),
    (["--arch", "sknet50"], "does not fit the network"),
])
def test_export_refuses_with_a_one_line_error(tiny_ckpt, tmp_path, flags, match):
    with pytest.raises(UserError, match=match) as info:
        export.main(["--ckpt_file", tiny_ckpt, "--file_name", str(tmp_path / "x"), *TINY_FLAGS, *flags])
    assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())



def test_eval_takes_the_mindirs_image_size_and_refuses_a_flag_that_contradicts_it(tiny_ckpt, tmp_path):
    export.main(["--ckpt_file", tiny_ckpt, "--file_name", str(tmp_path / "small"), *TINY_FLAGS[:-4],
                 "--image_size", "16", "--device_target", "CPU"])
    cfg = load_config(["--checkpoint_path", str(tmp_path / "small.mindir")])
    follow_run(cfg, cfg.checkpoint_path)
    assert cfg.image_size == 16
    cfg = load_config([*TINY_FLAGS, "--checkpoint_path", str(tmp_path / "small.mindir")])
    with pytest.raises(UserError, match=r"^--image_size 32 contradicts the shapes of .*small.mindir, which holds "
                                        r"image_size 16"):
        follow_run(cfg, cfg.checkpoint_path)


@pytest.mark.slow
def test_a_correct_export_of_huge_logits_passes_the_relative_check(tmp_path, capsys):
    """sknet50 with the ImageNet stem at 32x32 whose BatchNorms amplify (gamma 2.5 on unit statistics), as
    after 2 steps of a 1-epoch run where they do not yet normalise: logits of ~1e5, and a network so badly
    conditioned that fp32 rounding alone moves them by ~1e-4 of that (two correct unfolded conv paths differ by
    3e-3). The folded export is within 30x the network's own change for a one-ulp change of its input."""
    ms.set_seed(0)
    net = create_model("sknet50", 10, stem_type="imagenet")
    for name, param in net.parameters_and_names():
        if name.endswith("gamma"):
            param.set_data(ms.Tensor(np.full(param.shape, 2.5, np.float32)))
    ckpt = str(tmp_path / "sknet50.ckpt")
    ms.save_checkpoint(net, ckpt)
    export.main(["--ckpt_file", ckpt, "--file_name", str(tmp_path / "s50"), "--arch", "sknet50", "--stem_type",
                 "imagenet", "--image_size", "32", "--device_target", "CPU"])
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("max |exported"))
    found = re.search(r"batch: (\S+), (\S+) of the logits' scale (\S+) ", line)
    difference, relative, scale = (float(number) for number in found.groups())
    assert scale > 1e4 and difference > 1e-4, line  # what the absolute check refused
    assert relative < 1e-3 and "30x the" in line, line  # the limit of this network is its rounding sensitivity
