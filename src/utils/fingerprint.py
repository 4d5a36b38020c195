"""A short digest of a network's trainable weights, to check that data-parallel ranks agree."""
import hashlib

from mindspore import nn


def weights_fingerprint(net: nn.Cell) -> str:
    """SHA-256 (first 16 hex digits) of the trainable parameters' names and float32 bytes, by name.

    Data-parallel ranks apply the same averaged gradients, so their trainable weights are bit-identical
    and so are their fingerprints. BatchNorm moving statistics are not trainable and are left out:
    each rank computes them on its own batches (rank 0's are the ones saved).
    """
    return digest_arrays((param.name, param.asnumpy()) for param in net.trainable_params())


def digest_arrays(named_arrays) -> str:
    """SHA-256 (first 16 hex digits) of (name, array) pairs in name order, as float32 bytes."""
    digest = hashlib.sha256()
    for name, value in sorted(named_arrays, key=lambda item: item[0]):
        digest.update(name.encode())
        digest.update(value.astype("float32").tobytes())
    return digest.hexdigest()[:16]
