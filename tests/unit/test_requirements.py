"""The pinned dependencies are ones MindSpore 2.10 runs with (docs/reliability.md, "Dependencies")."""
import os

from packaging.requirements import Requirement

from tests.helpers import REPO_ROOT


def _requirement(name: str) -> Requirement:
    with open(os.path.join(REPO_ROOT, "requirements.txt"), encoding="utf-8") as handle:
        found = [Requirement(line) for line in handle.read().splitlines() if line.strip() and not line.startswith("#")]
    return next(req for req in found if req.name == name)


def test_numpy_is_pinned_below_2_for_mindspore_2_10():
    numpy = _requirement("numpy")
    assert not numpy.specifier.contains("2.0.0") and not numpy.specifier.contains("2.4.6")
    assert numpy.specifier.contains("1.26.4")
