"""A short digest of a network's trainable weights, to check that data-parallel ranks agree."""
import hashlib

from mindspore import nn


def weights_fingerprint(net: nn.Cell) -> str:
    """SHA-256 (first 16 hex digits) of the trainable parameters' names and float32 bytes, by name.

    Data-parallel ranks apply the same averaged gradients, so their trainable weights are bit-identical
    and so are their fingerprints. BatchNorm moving statistics are not trainable and are left out:
    each rank computes them on its own batches (rank 0's are the ones saved).
    """
    digest = hashlib.sha256()
    for param in sorted(net.trainable_params(), key=lambda p: p.name):
        digest.update(param.name.encode())
        digest.update(param.asnumpy().astype("float32").tobytes())
    return digest.hexdigest()[:16]
