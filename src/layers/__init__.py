"""The network's layers: the convolutions (native or the CPU GEMM path) and the Selective Kernel unit."""
