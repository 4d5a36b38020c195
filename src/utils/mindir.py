"""Read the input shape of an exported MINDIR file without compiling it."""
import os

from mindspore.train import mind_ir_pb2  # the MINDIR schema that ships with MindSpore

from src.utils.errors import UserError


def mindir_input_shape(path: str) -> tuple[int, ...]:
    """The shape of the single input of the MINDIR file at `path`, e.g. (1, 3, 224, 224).

    Raises `UserError` naming the file when it is missing, not a MINDIR, or has other than one input.
    """
    if not os.path.isfile(path):
        raise UserError(f"MINDIR file {path} does not exist; export one with export.py")
    model = mind_ir_pb2.ModelProto()
    try:
        with open(path, "rb") as handle:
            model.ParseFromString(handle.read())
    except Exception as err:  # protobuf raises its own DecodeError, which has no public base class here
        raise UserError(f"{path} is not a MINDIR file ({err}); export one with export.py") from err
    inputs = list(model.graph.input)
    if len(inputs) != 1 or len(inputs[0].tensor) != 1:
        raise UserError(f"{path} has {len(inputs)} inputs; the 310 pipeline expects one image input "
                        "(export it with export.py)")
    return tuple(int(dim) for dim in inputs[0].tensor[0].dims)
