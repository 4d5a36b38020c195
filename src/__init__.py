"""SKNet-50 for CIFAR-10 in MindSpore (Li et al., "Selective Kernel Networks", CVPR 2019)."""
