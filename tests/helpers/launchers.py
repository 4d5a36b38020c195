"""Helpers for the launcher tests: run a script in scripts/, fake tools on PATH, free ports."""
import os
import socket
import stat
import subprocess
import sys

from tests.helpers import REPO_ROOT
from tests.helpers.processes import default_sigint

SCRIPTS_DIR = os.path.join(REPO_ROOT, "scripts")


def run_script(name: str, args: list[str], env: dict[str, str] | None = None, cwd: str | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """Run scripts/NAME with bash and capture its output; `env` is added to a copy of os.environ."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(["bash", os.path.join(SCRIPTS_DIR, name), *args], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=default_sigint)


def free_port() -> int:
    """A TCP port that is free right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_executable(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def fake_tool_env(bin_dir: str, **tools: str) -> dict[str, str]:
    """PATH with `bin_dir` first, holding one bash script per tool (name -> script body).

    A fake `python` runs the real interpreter for `python -c ...`, which the launchers use to check
    the data layout before they start anything.
    """
    os.makedirs(bin_dir, exist_ok=True)
    for name, body in tools.items():
        if name == "python":
            body = f'if [ "$1" = -c ]; then exec "{sys.executable}" "$@"; fi\n{body}'
        write_executable(os.path.join(bin_dir, name), f"#!/usr/bin/env bash\n{body}\n")
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
