"""Shared test setup: the repo on sys.path, MindSpore on the CPU in graph mode."""
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
os.environ.setdefault("GLOG_v", "3")

import mindspore as ms  # noqa: E402  (after GLOG_v, which MindSpore reads at import)

ms.set_context(mode=ms.GRAPH_MODE)
ms.set_device("CPU")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds (still runs in CI)")
