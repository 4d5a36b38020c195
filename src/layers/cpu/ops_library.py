"""The library of the CPU ops: every `*.cc` of this folder compiled once against the oneDNN MindSpore bundles.

The library holds `onednn_conv.cc` (convolutions through oneDNN), `pointwise_conv.cc` (small images' 1x1
convs as one oneDNN GEMM), `batchnorm.cc` (BatchNorm's training pass), `sk_pool_select.cc` (the SK unit's
pooling and selection) and `max_pool.cc` (the stem's max-pool for inference); all but the max-pool share the
thread pool of `thread_pool.h`. A new op is one more `.cc` here (it is built with the others) and its wrapper.

MindSpore's CPU package ships `mindspore/lib/libdnnl.so.3` (oneDNN 3.10.1, THREADPOOL runtime) with
exported C symbols but no headers; the headers of that exact release are vendored in
`third_party/onednn/include`. The library is compiled at first use (`$CXX` or `g++`, C++17) into
`$SKNET_ONEDNN_CACHE` or `onednn/` in the project's cache root (`~/.cache/sknet50/` by default), under a
name keyed by everything that changes the binary, written to a temporary file and renamed into place,
so that processes building at the same time (distributed ranks) all end up with a complete file.
"""
import ctypes
import functools
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile

import mindspore as ms
import numpy as np

from src.utils.device import cpu_ops_compiler
from src.utils.errors import UserError

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = tuple(sorted(glob.glob(os.path.join(HERE, "*.cc"))))
LOCAL_HEADERS = tuple(sorted(glob.glob(os.path.join(HERE, "*.h"))))
# -fopenmp-simd: the `omp simd` reductions of batchnorm.cc vectorise (no OpenMP runtime is linked).
FLAGS = ("-std=c++17", "-O2", "-fopenmp-simd", "-fPIC", "-shared")
HEADERS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "third_party", "onednn", "include")
ONEDNN_VERSION = (3, 10)  # the vendored headers' ABI
DNNL_RUNTIME_THREADPOOL = 8  # dnnl_config.h
FALLBACK = "or use --conv_impl fast"


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int),
                ("hash", ctypes.c_char_p), ("cpu_runtime", ctypes.c_uint), ("gpu_runtime", ctypes.c_uint)]


def mindspore_libdnnl() -> str:
    """The `libdnnl.so.3` of the installed MindSpore, checked to be the oneDNN the headers describe."""
    path = os.path.join(os.path.dirname(ms.__file__), "lib", "libdnnl.so.3")
    if not os.path.isfile(path):
        raise UserError(f"conv_impl onednn needs the oneDNN library MindSpore bundles, but MindSpore "
                        f"{ms.__version__} has no {path}; use MindSpore 2.10's CPU package {FALLBACK}")
    dnnl_version = ctypes.CDLL(path).dnnl_version
    dnnl_version.restype = ctypes.POINTER(_Version)
    version = dnnl_version().contents
    if (version.major, version.minor) != ONEDNN_VERSION or version.cpu_runtime != DNNL_RUNTIME_THREADPOOL:
        raise UserError(f"conv_impl onednn was written for oneDNN {ONEDNN_VERSION[0]}.{ONEDNN_VERSION[1]} with "
                        f"the THREADPOOL runtime, but MindSpore {ms.__version__} bundles oneDNN "
                        f"{version.major}.{version.minor}.{version.patch} (cpu runtime {version.cpu_runtime}) "
                        f"in {path}; use MindSpore 2.10 {FALLBACK}")
    return os.path.realpath(path)


def compiler() -> tuple[str, str]:
    """The C++ compiler (`$CXX` or `g++`) and the first line of its `--version`."""
    cxx = cpu_ops_compiler()
    missing = UserError("conv_impl onednn builds a small C++ op once and needs g++ (C++17): install it "
                        f"(apt-get install g++) or set CXX, {FALLBACK} (CXX={cxx!r} does not run)")
    if shutil.which(cxx) is None:
        raise missing
    try:
        done = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as err:
        raise missing from err
    return cxx, (done.stdout.splitlines() or [""])[0]


def cache_dir() -> str:
    """`$SKNET_ONEDNN_CACHE`, else `onednn/` in the project's cache root, the one fetch_lite.sh uses:
    `${SKNET50_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sknet50}`."""
    if os.environ.get("SKNET_ONEDNN_CACHE"):
        return os.environ["SKNET_ONEDNN_CACHE"]
    user_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.environ.get("SKNET50_CACHE") or os.path.join(user_cache, "sknet50"), "onednn")


def build_key(compiler_version: str, libdnnl: str) -> str:
    """sha256 of the sources, our and the vendored headers, MindSpore's version, the compiler, its flags and the
    libdnnl path."""
    digest = hashlib.sha256()
    vendored = sorted(os.path.join(root, name) for root, _, names in os.walk(HEADERS) for name in names)
    files = [*SOURCES, *LOCAL_HEADERS, *vendored]
    for part in files:
        with open(part, "rb") as file:
            digest.update(os.path.relpath(part, HEADERS).encode() + b"\0" + file.read() + b"\0")
    for text in (ms.__version__, compiler_version, " ".join(FLAGS), libdnnl):
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()[:20]


@functools.lru_cache(maxsize=None)
def onednn_library() -> str:
    """The path of the compiled library, built now if the cache has none for this key."""
    libdnnl = mindspore_libdnnl()
    cxx, version = compiler()
    directory = cache_dir()
    stem = os.path.join(directory, f"onednn_ops-{build_key(version, libdnnl)}")
    if os.path.isfile(stem + ".so"):
        return stem + ".so"
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(suffix=".so.tmp", dir=directory)
        os.close(handle)
    except OSError as err:
        raise UserError(f"conv_impl onednn cannot write its build cache {directory} ({err.strerror}); set "
                        f"SKNET_ONEDNN_CACHE to a writable directory {FALLBACK}") from err
    lib_dir = os.path.dirname(libdnnl)
    includes = ["-I", HEADERS, *(flag for header in LOCAL_HEADERS for flag in ("-I", os.path.dirname(header)))]
    command = [cxx, *FLAGS, *includes, *SOURCES, "-o", temporary,
               "-L", lib_dir, "-l:libdnnl.so.3", f"-Wl,-rpath,{lib_dir}", "-pthread"]
    log = f"{stem}.{os.getpid()}.log"  # per process: ranks that build at once each keep their own output
    with open(log, "w", encoding="utf-8") as out:
        out.write(" ".join(command) + "\n")
        out.flush()
        try:
            code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=600, check=False).returncode
        except (OSError, subprocess.SubprocessError) as err:
            code = f"{type(err).__name__}"
    if code != 0:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise UserError(f"conv_impl onednn: compiling {' '.join(SOURCES)} failed ({code}); the compiler's output is "
                        f"in {log}; fix it {FALLBACK}")
    os.replace(temporary, stem + ".so")
    os.remove(log)  # only a failed build's log is worth keeping
    return stem + ".so"


def onednn_threads() -> int:
    """MindSpore's `runtime_num_threads` (it defaults to the cores it may use), else the usable CPUs."""
    usable = len(os.sched_getaffinity(0))
    threads = int(ms.get_context("runtime_num_threads") or 0)
    return min(threads, usable) if threads > 0 else usable


def thread_count_input() -> ms.Tensor:
    """`onednn_threads()` as the one-value int64 input that the library's ops take (aot ops have no attributes)."""
    return ms.Tensor(np.array([onednn_threads()], dtype=np.int64))
