#!/usr/bin/env bash
# The test suite on a fresh machine, as CI runs it.
#
#   bash scripts/run_tests.sh [pytest arguments]
#
# 1. Installs the system packages the tests need and that are missing, with apt-get (via sudo when not
#    root), and says which: cmake, g++ and make build the C++ 310 app, libgflags-dev is its flag
#    parser, shellcheck lints the shell scripts. The Python packages come from
#    `pip install -r requirements.txt -r requirements-test.txt`, which this script does not run.
# 2. Lints scripts/*.sh and ascend310_infer/*.sh with shellcheck.
# 3. Runs `python -m pytest -q -n 2 --dist loadfile` with the arguments given (default: `tests`, the whole
#    suite): the test files on 2 processes, each file whole in one (its module fixtures run once); `-n 0`
#    runs them in this process. The first build of the 310 app downloads MindSpore Lite 2.0.0 once (168 MB,
#    ascend310_infer/fetch_lite.sh).
# Exit code: pytest's, and "no tests collected" (pytest's 5) is a failure too. PYTHON picks the interpreter.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
# Python never imports from the caller's folder (a yaml.py or pip.py there would run): PYTHONSAFEPATH
# drops the unsafe sys.path entry, and PYTHONPATH names the project instead, so the tests' train.py,
# eval.py and `python -m src...` processes import the project from any shell.
export PYTHONSAFEPATH=1 PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

# "package:command" for each needed tool; gflags is a header, checked by missing_packages.
needed=(cmake:cmake g++:g++ make:make shellcheck:shellcheck)

missing_packages() {
    local entry
    for entry in "${needed[@]}"; do
        command -v "${entry#*:}" > /dev/null || echo "${entry%%:*}"
    done
    if [[ ! -f /usr/include/gflags/gflags.h && ! -f /usr/local/include/gflags/gflags.h ]]; then
        echo libgflags-dev
    fi
}

mapfile -t missing < <(missing_packages)
if ((${#missing[@]})); then
    echo "installing the missing system packages with apt-get: ${missing[*]}"
    if ! command -v apt-get > /dev/null; then
        echo "error: ${missing[*]} missing and there is no apt-get here; install them with this system's package manager" >&2
        exit 1
    fi
    sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then sudo=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    if ! "${sudo[@]}" apt-get update -qq || ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
        echo "error: apt-get could not install ${missing[*]}; install them by hand and run this again" >&2
        exit 1
    fi
    mapfile -t still < <(missing_packages)
    if ((${#still[@]})); then
        echo "error: still missing after apt-get: ${still[*]}; install them by hand and run this again" >&2
        exit 1
    fi
fi

echo "shellcheck scripts/*.sh ascend310_infer/*.sh"
(cd "$repo" && shellcheck scripts/*.sh ascend310_infer/*.sh)

# The whole suite, from the repository, unless the arguments name test files or folders themselves.
targets=(tests)
for arg in "$@"; do
    if [[ "$arg" != -* && -e "${arg%%::*}" ]]; then targets=(); fi  # a file, folder or test id
done
if ((${#targets[@]})); then cd "$repo"; fi
status=0
# --durations: the slowest tests at the end of the log, to keep the whole suite well under 30 minutes.
# Most of an e2e test is one train.py's single-threaded graph compile: 2 files at once halve the suite
# (34 min 45 s -> 15 min 30 s on 2 cores, 2026-11-28).
"$python" -m pytest -q -n 2 --dist loadfile --durations=15 "$@" "${targets[@]}" || status=$?
if ((status == 5)); then
    echo "error: pytest collected no tests from: $* ${targets[*]}" >&2
fi
exit "$status"
