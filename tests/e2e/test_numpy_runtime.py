"""MindSpore 2.10 runs with the installed numpy (requirements.txt pins numpy below 2)."""
import subprocess
import sys

import pytest

PYNATIVE_MEAN = """
import mindspore as ms, numpy as np
from mindspore import ops
ms.set_context(mode=ms.PYNATIVE_MODE)
ms.set_device("CPU")
print(float(ops.mean(ms.Tensor(np.ones((2, 3, 4, 4), np.float32)), (2, 3)).asnumpy().sum()))
"""


@pytest.mark.slow
def test_the_installed_numpy_runs_a_pynative_op():
    # Under numpy 2.x MindSpore 2.10's PyNative ops fail with "compiled using NumPy 1.x" and a SystemError.
    proc = subprocess.run([sys.executable, "-c", PYNATIVE_MEAN], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "6.0", proc.stderr[-2000:]
