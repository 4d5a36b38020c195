#!/bin/sh
# Build the prototype's aot custom-op library against the oneDNN that MindSpore bundles
# (mindspore/lib/libdnnl.so.3, oneDNN 3.10.1, threadpool runtime). See README.md for the headers.
set -e
cd "$(dirname "$0")"
MSLIB="$(python -c 'import mindspore, os; print(os.path.join(os.path.dirname(mindspore.__file__), "lib"))')"
g++ -O2 -std=c++17 -shared -fPIC -Iinclude onednn_conv.cc -o libonednn_conv.so \
    -L"$MSLIB" -l:libdnnl.so.3 -Wl,-rpath,"$MSLIB" -pthread
