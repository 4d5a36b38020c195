"""The Python half of the CPU runtime: runs a MINDIR with `nn.GraphCell(mindspore.load(path))`.

`python_backend.cc` creates one `MindirRunner` per loaded model and calls it with raw bytes;
everything it returns is plain Python data (str, int, bytes), so the C++ side needs no numpy.
"""
import os

import numpy as np

# MINDIR tensor type names -> numpy dtype names (the input types an exported image model can have).
MINDIR_DTYPES = {"FLOAT": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT8": "int8", "INT32": "int32",
                 "INT64": "int64", "UINT8": "uint8", "BOOL": "bool"}


def _input_specs(path: str) -> list[tuple[str, str, list[int]]]:
    """(name, numpy dtype name, shape) of each graph input, read from the MINDIR protobuf."""
    from mindspore.train import mind_ir_pb2

    model = mind_ir_pb2.ModelProto()
    with open(path, "rb") as handle:
        model.ParseFromString(handle.read())
    specs = []
    for graph_input in model.graph.input:
        tensor = graph_input.tensor[0]
        type_name = mind_ir_pb2.TensorProto.DataType.Name(tensor.data_type)
        if type_name not in MINDIR_DTYPES:
            raise ValueError(f"input {graph_input.name} has type {type_name}, which this CPU runtime does not feed")
        specs.append((graph_input.name, MINDIR_DTYPES[type_name], [int(dim) for dim in tensor.dims]))
    if not specs:
        raise ValueError(f"{path} has no graph inputs; is it a MINDIR written by mindspore.export?")
    return specs


class MindirRunner:
    """One loaded MINDIR on MindSpore's CPU backend (graph mode)."""

    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist")
        import mindspore as ms

        self.inputs = _input_specs(path)
        ms.set_context(mode=ms.GRAPH_MODE)
        ms.set_device("CPU")
        self._graph = ms.load(path)
        self._cell = None

    def build(self) -> None:
        """Compile the graph by running it once on zeros (the real Model::Build compiles too)."""
        from mindspore import nn

        self._cell = nn.GraphCell(self._graph)
        self.predict([bytes(np.zeros(shape, dtype).nbytes) for _, dtype, shape in self.inputs])

    def predict(self, buffers: list) -> list[tuple[str, str, list[int], bytes]]:
        """Run the graph on one raw buffer per input; (name, dtype, shape, bytes) per output."""
        import mindspore as ms

        tensors = [ms.Tensor(np.frombuffer(buffer, dtype).reshape(shape))
                   for buffer, (_, dtype, shape) in zip(buffers, self.inputs)]
        outputs = self._cell(*tensors)
        if not isinstance(outputs, (tuple, list)):
            outputs = (outputs,)
        results = []
        for index, output in enumerate(outputs):
            array = np.ascontiguousarray(output.asnumpy())
            results.append((f"output_{index}", array.dtype.name, list(array.shape), array.tobytes()))
        return results
