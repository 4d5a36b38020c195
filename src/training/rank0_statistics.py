"""Every rank of a distributed run evaluates rank 0's network, the one its checkpoints hold.

Data-parallel training averages the gradients, so the trainable weights of all ranks agree, but each rank's
BatchNorm running statistics (and their EMA) follow its own batches. Before the ranks evaluate their shards
of the test set, they take rank 0's statistics, so the summed counts are those of rank 0's checkpoint.
"""
from typing import Callable

import mindspore as ms
import numpy as np
from mindspore import nn

from src.training.resume_agreement import _AllGather


def use_rank0_statistics(net: nn.Cell, rank_size: int, gather: Callable[[np.ndarray], np.ndarray] | None = None
                         ) -> None:
    """Copy rank 0's non-trainable float parameters of `net` into this rank's (one AllGather; exact copies).
    `gather`: (values,) -> (rank_size * len(values),), the AllGather of all ranks (tests pass their own)."""
    if rank_size < 2:
        return
    params = [param for param in net.get_parameters() if not param.requires_grad and param.dtype == ms.float32]
    if not params:
        return
    mine = np.concatenate([param.asnumpy().ravel() for param in params])
    gather = gather or (lambda values: _AllGather()(ms.Tensor(values)).asnumpy())
    rank0 = np.asarray(gather(mine)).reshape(rank_size, len(mine))[0]
    start = 0
    for param in params:
        param.set_data(ms.Tensor(rank0[start:start + param.size].reshape(param.shape)))
        start += param.size
