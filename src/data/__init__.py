"""CIFAR-10 data: the binary files, the input pipeline, the download, and the digits demo set."""
