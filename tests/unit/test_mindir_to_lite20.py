"""tools/mindir_to_lite20.py: the CI-only rewrite of a MindSpore 2.10 MINDIR into Lite 2.0.0's dialect.

That Lite runs the result like MindSpore is checked end to end in tests/e2e/test_infer_310.py; here,
the rewrite's own promises: version 1, the listed constants become attributes, nothing else changes,
and an op it cannot translate is a one-line refusal.
"""
import mindspore as ms
import numpy as np
import pytest
from mindspore.train import mind_ir_pb2

from src.layers.create_layers import create_layers
from src.sknet50 import Stem, create_model
from src.utils.errors import UserError
from tests.helpers.infer import random_network
from tools import mindir_to_lite20 as tool


def exported(net, path) -> mind_ir_pb2.ModelProto:
    net.set_train(False)
    ms.export(net, ms.Tensor(np.zeros((2, 3, 32, 32), np.float32)), file_name=str(path), file_format="MINDIR")
    model = mind_ir_pb2.ModelProto()
    model.ParseFromString((path.parent / (path.name + ".mindir")).read_bytes())
    return model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> mind_ir_pb2.ModelProto:
    return exported(random_network("sknet_tiny"), tmp_path_factory.mktemp("mindir") / "tiny")


def test_constants_become_the_2_0_attributes(tiny_model):
    model = mind_ir_pb2.ModelProto()
    model.CopyFrom(tiny_model)
    tool.rewrite(model)
    assert model.mind_ir_version == 1
    primitives = {primitive.name: primitive for primitive in model.primitives}
    seen = set()
    for node in model.graph.node:
        op = tool.op_name(node)
        if op not in tool.CONSTANT_INPUTS_TO_ATTRIBUTES:
            continue
        seen.add(op)
        attributes = {a.name: a for a in primitives[node.op_type.split("::")[-1]].attribute}
        assert set(tool.CONSTANT_INPUTS_TO_ATTRIBUTES[op]) <= set(attributes), op
        if op == "BatchNorm":
            assert len(node.input) == 5  # x, scale, bias, mean, variance
            assert attributes["data_format"].s == b"NCHW" and not attributes["is_training"].i
            assert attributes["epsilon"].f == pytest.approx(1e-5)
        if op == "MatMul":
            assert len(node.input) == 2 and attributes["transpose_b"].i == 1 and attributes["transpose_a"].i == 0
        if op == "Split":
            assert attributes["axis"].i == 1 and attributes["output_num"].i == 2
    assert seen == set(tool.CONSTANT_INPUTS_TO_ATTRIBUTES)


def test_everything_else_is_left_as_it_was(tiny_model):
    model = mind_ir_pb2.ModelProto()
    model.CopyFrom(tiny_model)
    tool.rewrite(model)
    assert [p.SerializeToString() for p in model.graph.parameter] == \
        [p.SerializeToString() for p in tiny_model.graph.parameter]
    before = {node.name: node for node in tiny_model.graph.node}
    for node in model.graph.node:
        if tool.op_name(node) not in tool.CONSTANT_INPUTS_TO_ATTRIBUTES:
            assert node.SerializeToString() == before[node.name].SerializeToString()


def test_an_unknown_op_is_refused(tiny_model):
    model = mind_ir_pb2.ModelProto()
    model.CopyFrom(tiny_model)
    node = next(node for node in model.graph.node if tool.op_name(node) == "ReLU")
    node.op_type = "REF::GeLU:99"
    with pytest.raises(UserError, match="op GeLU .* is not known to the rewrite"):
        tool.rewrite(model)


def test_the_imagenet_stem_passes_as_pad_and_max_pool(tmp_path):
    model = exported(Stem("imagenet", 4, create_layers("native")), tmp_path / "stem")
    tool.rewrite(model)
    assert {"Pad", "MaxPool"} <= {tool.op_name(node) for node in model.graph.node}


def test_cli_writes_the_file_and_refuses_a_non_mindir(tmp_path, capsys):
    source = tmp_path / "tiny"
    exported(create_model("sknet_tiny", 10, stem_type="cifar"), source)
    assert tool.main([str(tmp_path / "tiny.mindir"), str(tmp_path / "out.mindir")]) == 0
    model = mind_ir_pb2.ModelProto()
    model.ParseFromString((tmp_path / "out.mindir").read_bytes())
    assert model.mind_ir_version == 1
    (tmp_path / "junk.mindir").write_bytes(b"\xff" * 64)
    with pytest.raises(UserError, match="is not a MINDIR file"):
        tool.main([str(tmp_path / "junk.mindir"), str(tmp_path / "x.mindir")])
    assert not (tmp_path / "x.mindir").exists()
