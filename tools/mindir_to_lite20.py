"""Rewrite a MINDIR exported by MindSpore 2.10 into the dialect that MindSpore Lite 2.0.0 reads.

    python -m tools.mindir_to_lite20 IN.mindir OUT.mindir     (from the repository root)

Test and CI tooling only. The registry's only MindSpore Lite package is mindspore-lite 2.0.0, and
CI runs the 310 app (ascend310_infer/) on its C++ library on the CPU. Lite 2.0.0 refuses a 2.10
MINDIR: it reads MINDIR version 1, and 2.10 passes some op arguments as constant inputs where 2.0
expects primitive attributes. This tool sets the version and moves those constants back into
attributes, for the ops SKNet exports; an op it does not know is refused, never passed through.
It is never the user's path on an Ascend 310: there, install the MindSpore Lite whose version
matches the MindSpore that exported the model, and give it the file export.py wrote.
"""
import sys

from mindspore.train import mind_ir_pb2  # the MINDIR schema that ships with MindSpore

from src.utils.atomic_file import write_atomic
from src.utils.errors import UserError, run_cli

LITE20_MIND_IR_VERSION = 1
# Per op: the names of the trailing constant inputs that MindSpore 2.0 held as attributes, in
# input order (from the 2.10 op definitions; 2.0 took the leading inputs as they are).
CONSTANT_INPUTS_TO_ATTRIBUTES = {
    "BatchNorm": ("is_training", "epsilon", "momentum", "data_format"),
    "BiasAdd": ("data_format",),
    "MatMul": ("transpose_a", "transpose_b"),
    "ReduceMean": ("keep_dims",),
    "Softmax": ("axis",),
    "Split": ("axis", "output_num"),
}
# Ops whose inputs are the same in both versions.
UNCHANGED_OPS = {"Add", "Conv2D", "Depend", "Load", "MakeTuple", "MaxPool", "Mul", "Pad", "ReLU", "Reshape",
                 "TupleGetItem", "UpdateState"}
# 2.10 passes data formats as an enum (mindspore.ops.auto_generate's Format); 2.0 kept the name.
FORMAT_NAMES = {0: b"NCHW", 1: b"NHWC"}
ATTR = mind_ir_pb2.AttributeProto


def op_name(node) -> str:
    """"BatchNorm" for a node whose op_type is "REF::BatchNorm:10"."""
    return node.op_type.split("::")[-1].split(":")[0]


def as_attribute(name: str, value, op: str):
    """The constant `value` (an AttributeProto) as the 2.0 attribute `name`."""
    attribute = ATTR()
    attribute.CopyFrom(value)
    attribute.name = name
    if name == "data_format":
        if value.type != ATTR.INT64 or value.i not in FORMAT_NAMES:
            raise UserError(f"{op}'s data_format is {value}, not a known format enum; the rewrite knows NCHW and NHWC")
        attribute.Clear()
        attribute.name, attribute.type, attribute.s = name, ATTR.STRING, FORMAT_NAMES[value.i]
    return attribute


def rewrite(model) -> None:
    """Rewrite `model` (a ModelProto) in place into MindSpore 2.0's dialect."""
    if model.functions:
        raise UserError("the MINDIR holds sub-graphs (functions); the rewrite handles one flat graph only")
    graph = model.graph
    constants = {node.output[0] if node.output else node.name: node.attribute[0]
                 for node in graph.node if node.op_type == "Constant"}
    primitives = {primitive.name: primitive for primitive in model.primitives}
    rewritten = {}  # (primitive, constant inputs) -> the new primitive's name, shared by equal nodes
    for node in graph.node:
        op = op_name(node)
        if node.op_type == "Constant" or op in UNCHANGED_OPS:
            continue
        if op not in CONSTANT_INPUTS_TO_ATTRIBUTES:
            raise UserError(f"op {op} (node {node.name}) is not known to the rewrite into MindSpore Lite 2.0's "
                            "dialect; add its constant inputs to CONSTANT_INPUTS_TO_ATTRIBUTES")
        names = CONSTANT_INPUTS_TO_ATTRIBUTES[op]
        moved = list(node.input[-len(names):])
        if any(name not in constants for name in moved):
            raise UserError(f"node {node.name} ({op}) does not end with the constant inputs {names}")
        source = node.op_type.split("::")[-1]
        key = (source, tuple(moved))
        if key not in rewritten:
            primitive = model.primitives.add()
            primitive.CopyFrom(primitives[source])
            primitive.name = f"{source}_lite20_{len(rewritten)}"
            primitive.attribute.extend(as_attribute(name, constants[input_name], op)
                                       for name, input_name in zip(names, moved))
            rewritten[key] = primitive.name
        node.op_type = "REF::" + rewritten[key]
        del node.input[-len(names):]
    model.mind_ir_version = LITE20_MIND_IR_VERSION


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise UserError("usage: python -m tools.mindir_to_lite20 IN.mindir OUT.mindir")
    source, target = argv
    model = mind_ir_pb2.ModelProto()
    try:
        with open(source, "rb") as handle:
            model.ParseFromString(handle.read())
    except OSError as err:
        raise UserError(f"cannot read MINDIR {source}: {err}") from err
    except Exception as err:  # protobuf raises its own DecodeError, which has no public base class here
        raise UserError(f"{source} is not a MINDIR file ({err}); export one with export.py") from err
    rewrite(model)
    write_atomic(target, model.SerializeToString())
    print(f"wrote {target}: {source} in MindSpore Lite 2.0's MINDIR dialect (test/CI tooling)")
    return 0


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
