"""scripts/run_tests.sh, the README's test command: system packages, pass-through, exit codes."""
import os
import shutil
import subprocess

import pytest

from tests.helpers import REPO_ROOT

SCRIPT = os.path.join(REPO_ROOT, "scripts", "run_tests.sh")
pytestmark = pytest.mark.slow  # starts bash, shellcheck and pytest


def run(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", SCRIPT, *args], cwd=REPO_ROOT, env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=600)


def test_arguments_reach_pytest_and_its_result_is_the_exit_code():
    passed = run(["tests/unit/test_loss.py", "-rA"])
    assert passed.returncode == 0, passed.stdout[-2000:] + passed.stderr[-2000:]
    assert "shellcheck scripts/*.sh" in passed.stdout
    reported = [line for line in passed.stdout.splitlines() if line.startswith("PASSED ")]
    assert reported and all(line.startswith("PASSED tests/unit/test_loss.py::") for line in reported)


def test_no_collected_test_is_a_failure():
    result = run(["tests/unit/test_loss.py", "-k", "no_test_has_this_name"])
    assert result.returncode == 5
    assert "error: pytest collected no tests" in result.stderr


def test_a_missing_system_package_is_installed_with_apt(tmp_path):
    # A PATH without shellcheck, whose apt-get only records its arguments: the script must name the
    # package, call apt-get for it, and stop in one line when it is still missing afterwards.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            target = bin_dir / name
            if name not in ("shellcheck", "apt-get", "sudo") and not target.exists():
                target.symlink_to(os.path.join(folder, name))
    calls = tmp_path / "apt-calls"
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "apt-get").chmod(0o755)
    shutil.copy(bin_dir / "apt-get", bin_dir / "sudo")
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    result = run(["tests/unit/test_loss.py"], env={**os.environ, "PATH": str(bin_dir)})
    assert "installing the missing system packages with apt-get: shellcheck" in result.stdout
    assert "install -y -qq --no-install-recommends shellcheck" in calls.read_text()
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: still missing after apt-get: shellcheck; install them by hand and "
                                     "run this again")


def test_a_plain_shell_runs_tests_that_start_the_entry_points(tmp_path):
    # The README's command typed in a shell with nothing exported (as `env -i` gives): the tests' own
    # child processes (train.py, `python -m src...`) must import the project, so the script sets
    # what they need itself, not CI.
    probe = tmp_path / "test_child_imports_the_project.py"
    probe.write_text("import subprocess, sys\n\n\ndef test_child():\n"
                     "    subprocess.run([sys.executable, '-c', 'import src.utils.errors'], check=True)\n")
    plain = {"HOME": os.environ.get("HOME", "/root"), "PATH": os.environ["PATH"]}
    result = run([str(probe), "-n", "0", "-p", "no:cacheprovider"], env=plain)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
