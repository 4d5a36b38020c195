"""The CPU implementations of the network's layers (conv_impl `fast` and `onednn`); nothing here runs on a chip.

- `gemm_conv.py`: `fast`, convolutions as GEMMs of MindSpore ops (no compiler needed);
- `ops_library.py`: compiles every `*.cc` here once into one library (`thread_pool.h` is their thread pool);
- `onednn_conv.{py,cc}`, `pointwise_conv.cc`: `onednn`'s convolutions through MindSpore's bundled oneDNN;
- `batchnorm.{py,cc}`, `max_pool.{py,cc}`, `sk_pool_select.{py,cc}`: `onednn`'s BatchNorm, the stem's max-pool
  and the SK unit's pooling and selection.
Only `src.layers.create_layers` imports this package. A new op: its `.cc` here (built with the others), its
wrapper cell here, and one line of the `OneDnnLayers` in src/layers/create_layers.py.
"""
