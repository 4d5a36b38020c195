"""The network's layers (convolutions, the Selective Kernel unit), `create_layers` that picks their implementation
once, and the CPU implementations (`cpu/`, which only `create_layers` imports)."""
