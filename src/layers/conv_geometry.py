"""The arithmetic of a sliding window (conv or pool), shared by the CPU layers that infer their own shapes."""


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """The output length along one axis: the formula of PyTorch's and MindSpore's conv and pool docs."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(kernel: int, dilation: int = 1) -> int:
    """The symmetric padding that keeps the size at stride 1 for an odd kernel, as every SKNet conv uses."""
    return dilation * (kernel - 1) // 2
