"""The C++ CPU ops (src/layers/*.cc, one library) built with AddressSanitizer and UndefinedBehaviorSanitizer and
run through their own tests, so that a read or write out of bounds fails even when the output looks right.

The library is loaded into MindSpore's Python process, so the sanitizer runtimes are preloaded (LD_PRELOAD)
into a child pytest that builds the library with the extra flags into its own cache folder. The 310 app's
sanitizer build is in tests/e2e/test_infer_310.py.
"""
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT
from tests.helpers.processes import default_sigint

SANITIZER_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")
# Each op through its own tests, the small cases: the BatchNorm forward and backward, the max-pool, the SK
# pooling and selection on one thread and on the pool, the oneDNN conv (grouped, dilated, 7x7) and the 1x1 GEMM op.
CONV = "tests/unit/test_onednn_conv.py::test_onednn_conv_matches_native"
OP_TESTS = ["tests/unit/test_cpu_batchnorm.py", "tests/unit/test_cpu_max_pool.py",
            "tests/unit/test_cpu_selective_kernel.py::test_the_onednn_unit_matches_native[5-1]",
            "tests/unit/test_cpu_selective_kernel.py::test_the_onednn_unit_matches_native[12-2]",
            f"{CONV}[128x128x3x1x2x32-8px]", f"{CONV}[256x256x3x2x1x32-2px]", f"{CONV}[3x64x7x2x1x1-16px]",
            f"{CONV}[64x128x1x1x1x1-2px]", f"{CONV}[64x96x1x2x1x1-3px]"]
RUN_WITH_FLAGS = ("import sys\nfrom src.layers.cpu import ops_library\n"
                  f"ops_library.FLAGS = ops_library.FLAGS + {SANITIZER_FLAGS!r}\n"
                  "import pytest\nsys.exit(pytest.main(sys.argv[1:]))")


def runtime_library(name: str) -> str:
    path = subprocess.run(["g++", f"-print-file-name=lib{name}.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(path):
        pytest.skip(f"g++ has no lib{name}.so here")
    return path


@pytest.mark.slow
def test_the_cpu_ops_built_with_sanitizers_pass_their_tests(tmp_path):
    env = dict(os.environ, LD_PRELOAD=f"{runtime_library('asan')} {runtime_library('ubsan')}",
               ASAN_OPTIONS="detect_leaks=0:halt_on_error=1", UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
               SKNET_ONEDNN_CACHE=str(tmp_path / "cache"))
    # -s: a sanitizer's report is written by the process as it aborts, past pytest's capture
    result = subprocess.run([sys.executable, "-c", RUN_WITH_FLAGS, "-q", "-s", "-x", "-p", "no:cacheprovider",
                             *OP_TESTS], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=900, preexec_fn=default_sigint)
    report = result.stdout[-3000:] + result.stderr[-5000:]
    assert "Sanitizer" not in result.stderr and "runtime error" not in result.stderr, report
    assert result.returncode == 0, report
    library = [name for name in os.listdir(tmp_path / "cache") if name.endswith(".so")]
    assert library and "__asan_init" in subprocess.run(["nm", "-D", str(tmp_path / "cache" / library[0])],
                                                       capture_output=True, text=True).stdout
