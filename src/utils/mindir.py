"""Read the input and output shapes of an exported MINDIR file without compiling it."""
import os

from mindspore.train import mind_ir_pb2  # the MINDIR schema that ships with MindSpore

from src.utils.errors import UserError


def _graph(path: str):
    """The graph of the MINDIR file at `path`; `UserError` naming the file when it is missing or not a MINDIR."""
    if not os.path.isfile(path):
        raise UserError(f"MINDIR file {path} does not exist; export one with export.py")
    model = mind_ir_pb2.ModelProto()
    try:
        with open(path, "rb") as handle:
            model.ParseFromString(handle.read())
    except Exception as err:  # protobuf raises its own DecodeError, which has no public base class here
        raise UserError(f"{path} is not a MINDIR file ({err}); export one with export.py") from err
    return model.graph


def mindir_input_shape(path: str) -> tuple[int, ...]:
    """The shape of the single input of the MINDIR file at `path`, e.g. (1, 3, 224, 224).

    Raises `UserError` naming the file when it is missing, not a MINDIR, or has other than one input.
    """
    inputs = list(_graph(path).input)
    if len(inputs) != 1 or len(inputs[0].tensor) != 1:
        raise UserError(f"{path} has {len(inputs)} inputs; the 310 pipeline expects one image input "
                        "(export it with export.py)")
    return tuple(int(dim) for dim in inputs[0].tensor[0].dims)


def mindir_image_input(path: str) -> tuple[int, int]:
    """(batch size, image size) of a MINDIR that takes square NCHW RGB images, as export.py writes them."""
    shape = mindir_input_shape(path)
    if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3] or shape[0] < 1:
        raise UserError(f"{path} takes input of shape {list(shape)}, not square NCHW RGB images; "
                        "export it with export.py")
    return shape[0], shape[2]


def mindir_class_count(path: str) -> int | None:
    """The class count of a MINDIR whose single output is (batch, classes) logits; None for any other output."""
    outputs = list(_graph(path).output)
    if len(outputs) != 1 or len(outputs[0].tensor) != 1 or len(outputs[0].tensor[0].dims) != 2:
        return None
    return int(outputs[0].tensor[0].dims[1])
