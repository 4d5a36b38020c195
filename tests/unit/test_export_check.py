"""export.py's self-check: strict on the CPU (fp32 both ways), relative on GPU/Ascend (fp16 convs/matmuls)."""
import numpy as np
import pytest

import export
from src.utils.errors import UserError


def logits(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((4, 10)).astype(np.float32) * 8


def test_the_cpu_keeps_the_strict_absolute_limit():
    expected = logits(0)
    export.check_exported("x.mindir", expected + 5e-5, expected, "CPU")
    with pytest.raises(UserError, match=r"differs from the network by 0\.001 .*on CPU"):
        export.check_exported("x.mindir", expected + 1e-3, expected, "CPU")


@pytest.mark.parametrize("device_target", ["Ascend", "GPU"])
def test_a_chip_accepts_fp16_rounding_but_not_a_wrong_graph(device_target, capsys):
    expected = logits(1)
    fp16 = expected.astype(np.float16).astype(np.float32) * (1 + 2e-3)  # fp16 storage plus accumulated rounding
    export.check_exported("x.mindir", fp16, expected, device_target)
    assert "top-1 agreement 100%" in capsys.readouterr().out
    wrong = expected.copy()
    wrong[:, 0] += 1.0  # a real error: one class logit off by 1
    with pytest.raises(UserError, match=f"on {device_target}"):
        export.check_exported("x.mindir", wrong, expected, device_target)
