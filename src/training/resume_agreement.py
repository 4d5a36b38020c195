"""Ranks of a distributed run agree on the checkpoint they resume from.

With `--resume auto` each rank looks in its own `--output_path`; on several machines those are
different folders, and a rank that finds nothing would start from scratch while the others resume.
Every rank therefore gathers every rank's choice (global step and a digest of the file) and all of
them stop with the same one-line error when the choices differ.
"""
import mindspore as ms
import numpy as np
from mindspore import nn, ops

from src.utils.checkpoint_file import read_sidecar
from src.utils.errors import UserError


class _AllGather(nn.Cell):
    """AllGather in a compiled cell (graph mode, like the training step)."""

    def __init__(self):
        super().__init__()
        self.gather = ops.AllGather()

    def construct(self, x):
        return self.gather(x)


def choice_key(path: str | None) -> tuple[int, int]:
    """(global step, first 28 bits of the sha256) of a resume checkpoint; (-1, -1) for none."""
    if not path:
        return -1, -1
    meta = read_sidecar(path) or {}
    return int(meta.get("global_step", -1)), int(str(meta.get("sha256", "f" * 7))[:7], 16)


def check_ranks_agree(path: str | None, rank_id: int, rank_size: int) -> None:
    """Raise `UserError` on every rank when the ranks chose different resume checkpoints."""
    if rank_size < 2:
        return
    mine = np.array(choice_key(path), dtype=np.int32)
    gathered = _AllGather()(ms.Tensor(mine)).asnumpy().reshape(rank_size, 2)
    if (gathered == gathered[0]).all():
        return
    found = ", ".join(f"rank {rank}: " + ("nothing" if step < 0 else f"global step {step}")
                      for rank, (step, _) in enumerate(gathered.tolist()))
    raise UserError(f"--resume auto: the ranks found different checkpoints ({found}; this is rank {rank_id}); "
                    "give every machine a copy of rank 0's --output_path, or pass the same --resume PATH to all")
