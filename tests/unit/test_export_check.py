"""export.py's self-check: relative to the logits' scale, max(1, largest |logit|); 1e-4 of it on the CPU
(fp32 both ways), 2e-2 on GPU/Ascend (fp16 convs/matmuls)."""
import numpy as np
import pytest

import export
from src.utils.errors import UserError


def logits(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((4, 10)).astype(np.float32) * 8


def test_the_cpu_limit_is_1e4_of_the_logits_scale_and_at_least_1e4(capsys):
    expected = logits(0)
    export.check_exported("x.mindir", expected + 5e-5, expected, "CPU")
    with pytest.raises(UserError, match=r"differs from the network by 0\.005, 0\.00027 of the logits' scale 18\.6 "
                                        r"\(above 0\.00186: 0\.0001 of the scale on CPU\)"):
        export.check_exported("x.mindir", expected + 5e-3, expected, "CPU")
    # Logits of an eval-mode network with little-trained BatchNorm statistics: fp32 rounding of 3.5e-7 of
    # them (a correct ImageNet-stem export measured 3.7e-4 on logits of ~1040) passes...
    large = logits(2) / np.abs(logits(2)).max() * 1040
    export.check_exported("x.mindir", large + 3.7e-4, large, "CPU")
    assert all(limit in export.check_exported.__doc__ for limit in ("(1e-4)", "on the CPU", "(2e-2)", "(30)"))
    assert "(limit 0.104: 0.0001 of the scale on CPU; top-1 agreement 100%)" in capsys.readouterr().out
    # ...and a real difference, one logit off by 1% of the scale, does not.
    wrong = large.copy()
    wrong[0, 3] += 10.4
    with pytest.raises(UserError, match="on CPU"):
        export.check_exported("x.mindir", wrong, large, "CPU")
    with pytest.raises(UserError, match="differs from the network by nan"):
        export.check_exported("x.mindir", np.full_like(large, np.nan), large, "CPU")


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


def test_a_network_that_amplifies_rounding_gets_a_limit_of_30x_its_own_change_per_ulp(capsys):
    # sknet50 with BN gamma 2.5 (tests/e2e/test_export.py): the folded export differs by 9.4e-5 of logits of
    # 1.23e5, while a one-ulp change of the input moves them by 4.2e-4 of that.
    expected = logits(3) / np.abs(logits(3)).max() * 1.23e5
    export.check_exported("x.mindir", expected + 11.5, expected, "CPU", sensitivity=51.7)
    assert "(limit 1.55e+03: 30x the 52 that a one-ulp change of the input makes;" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"above 12\.3: 0\.0001 of the scale on CPU"):
        export.check_exported("x.mindir", expected + 20, expected, "CPU", sensitivity=0.1)
    with pytest.raises(UserError, match="30x the 52 that a one-ulp change"):
        export.check_exported("x.mindir", expected + 2000, expected, "CPU", sensitivity=51.7)
