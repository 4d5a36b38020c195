"""Shared test setup: the repo on sys.path, MindSpore on the CPU in graph mode, the `slow` marker.

Every test that runs MindSpore in another process (train.py, eval.py, msrun, benchmark.py, a CLI),
trains or exports a network, or builds the C++ app is marked `slow`; `python -m pytest -q -m "not slow"
tests` is the quick loop (launcher tests with fake tools and in-process unit tests).
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("GLOG_v", "3")

import mindspore as ms  # noqa: E402  (after GLOG_v, which MindSpore reads at import)

ms.set_context(mode=ms.GRAPH_MODE)
ms.set_device("CPU")

# conv_impl onednn compiles its C++ op once per session into this directory (inherited by the entry
# points the tests start), never into the user's ~/.cache.
_ONEDNN_CACHE = None
if "SKNET_ONEDNN_CACHE" not in os.environ:
    _ONEDNN_CACHE = os.environ["SKNET_ONEDNN_CACHE"] = tempfile.mkdtemp(prefix="sknet-onednn-tests-")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs MindSpore in another process, trains or exports, or builds the C++ app "
                            "(CI runs it; skip with -m 'not slow')")


def pytest_unconfigure(config):
    if _ONEDNN_CACHE is not None:
        shutil.rmtree(_ONEDNN_CACHE, ignore_errors=True)
