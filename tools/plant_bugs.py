"""Plant known bugs one at a time in a temporary copy of the repo and report which ones the tests miss.

    python tools/plant_bugs.py                 # every bug in tools/planted_bugs.py
    python tools/plant_bugs.py --only prun     # the bugs whose name contains "prun"
    python tools/plant_bugs.py --skip-slow     # only bugs whose tests run without the `slow` marker
    python tools/plant_bugs.py --baseline      # first check that the aimed tests pass with no bug planted
    python tools/plant_bugs.py --list
    python tools/plant_bugs.py --jobs 2        # two copies, two bugs at a time (the whole list takes hours)

For each bug the file is changed by one exact text substitution (the text must occur exactly once,
otherwise the bug is reported STALE: the code moved on, update the list), the tests aimed at it run
with `pytest -x`, and the file is restored. A bug is CAUGHT when a test fails or the bug kills pytest
with a signal (the suite fails either way), SURVIVED when all pass,
ERROR when pytest could not run them (collection error, no test selected, timeout), NOT RUN
with --skip-slow when every test aimed at the bug is slow. The repo itself is
never touched. Exit code 0 only when every bug was caught.

(A general mutation tester such as mutmut would plant thousands of mutants in this code, each needing
the slow MindSpore start-up; a short list of realistic bugs with the tests aimed at each runs in minutes.)
"""
import argparse
import os
import queue
import signal
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from planted_bugs import BUGS, Bug

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 1800  # one bug's tests; a healthy slow selection takes a few minutes


def copy_repo(target: str) -> None:
    """Copy the tracked and untracked-but-not-ignored files (the working tree as it is, no .git)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = os.path.join(REPO_ROOT, relative)
        if os.path.isfile(source):
            os.makedirs(os.path.dirname(os.path.join(target, relative)), exist_ok=True)
            shutil.copy2(source, os.path.join(target, relative))


def run_tests(copy: str, tests: tuple[str, ...], slow: bool) -> tuple[int, str]:
    marker = [] if slow else ["-m", "not slow"]
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *marker, *tests]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run(command, cwd=copy, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT} s"
    lines = done.stdout.strip().splitlines()
    failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return done.returncode, failed[0] if failed else (lines[-1] if lines else "")


def plant(copy: str, bug: Bug) -> str | None:
    """Apply the bug in the copy; return the original text to restore, or None when the bug is stale."""
    path = os.path.join(copy, bug.path)
    with open(path, encoding="utf-8") as handle:
        original = handle.read()
    if original.count(bug.old) != 1:
        return None
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(original.replace(bug.old, bug.new))
    return original


def try_bug(copy: str, bug: Bug, slow: bool) -> tuple[str, float, str]:
    original = plant(copy, bug)
    if original is None:
        return "STALE", 0.0, f"the text to replace is not in {bug.path} exactly once"
    start = time.monotonic()
    try:
        code, detail = run_tests(copy, bug.tests, slow)
    finally:
        with open(os.path.join(copy, bug.path), "w", encoding="utf-8") as handle:
            handle.write(original)
    verdict = {0: "SURVIVED", 1: "CAUGHT"}.get(code, "ERROR")
    if code < -1:  # killed by a signal (-1 is our timeout): the README's test command fails too
        verdict, detail = "CAUGHT", f"pytest killed by {signal.Signals(-code).name}; {detail}"
    if code == 5 and not slow:  # pytest: no test selected; every test aimed at this bug is marked slow
        verdict, detail = "NOT RUN", "its tests are all marked slow"
    return verdict, time.monotonic() - start, detail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="plant only the bugs whose name contains this text")
    parser.add_argument("--skip-slow", action="store_true", help="run only tests without the `slow` marker")
    parser.add_argument("--baseline", action="store_true", help="first run each test selection with no bug planted")
    parser.add_argument("--jobs", type=int, default=1, help="bugs tried at once, each in its own copy")
    parser.add_argument("--list", action="store_true", help="list the bugs and their tests, plant nothing")
    args = parser.parse_args()
    bugs = [bug for bug in BUGS if args.only.lower() in bug.name.lower()]
    if args.list or not bugs:
        for bug in bugs:
            print(f"{bug.name}  [{bug.path}]  -> {' '.join(bug.tests)}")
        return 0 if bugs else 1
    with tempfile.TemporaryDirectory(prefix="plant-bugs-") as work:
        copies = queue.Queue()
        for index in range(args.jobs):  # one copy per job: a bug is planted in a copy no other job uses
            copy_repo(os.path.join(work, str(index)))
            copies.put(os.path.join(work, str(index)))
        if args.baseline:
            for tests in dict.fromkeys(bug.tests for bug in bugs):
                code, detail = run_tests(copies.queue[0], tests, not args.skip_slow)
                if code != 0:
                    print(f"baseline fails, fix this first: {' '.join(tests)}: {detail}")
                    return 1
            print("baseline: every selection passes with no bug planted")

        def try_in_a_free_copy(bug: Bug) -> str:
            copy = copies.get()
            try:
                verdict, seconds, detail = try_bug(copy, bug, not args.skip_slow)
            finally:
                copies.put(copy)
            print(f"{verdict:8} {seconds:6.0f} s  {bug.name}  [{bug.path}]  {detail}", flush=True)
            return verdict

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(try_in_a_free_copy, bugs))
    caught = results.count("CAUGHT")
    print(f"\n{caught} of {len(results)} planted bugs caught; " + ", ".join(
        f"{results.count(v)} {v.lower()}" for v in ("SURVIVED", "ERROR", "STALE", "NOT RUN") if results.count(v)))
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
