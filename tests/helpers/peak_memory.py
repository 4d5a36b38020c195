"""What a layer keeps in memory: the peak RSS growth of a worker script, at two depths of a stack.

A worker is Python source that builds and compiles a stack of `layers` layers (its first two
command-line arguments are a variant name and `layers`) and defines `run()`, one call of the
compiled graph. It runs in a fresh interpreter, so that the peak is its own; the compiler's peak
is forgotten before `run()` is called twice.
"""
import json
import os
import subprocess
import sys

from tests.helpers import REPO_ROOT

MEASURE = r"""

def _status_mb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


with open("/proc/self/clear_refs", "w") as clear_refs:
    clear_refs.write("5")  # resets VmHWM (the peak RSS) to the current RSS, forgetting the compiler's peak
_before = _status_mb("VmRSS")
run()
run()
print("GROWTH_MB " + str(_status_mb("VmHWM") - _before), flush=True)
"""


def peak_growth_mb(tmp_path, worker: str, variant: str, layers: int, *args) -> float:
    """The peak RSS growth (MB) over two `run()` calls of `worker` with these arguments."""
    script = tmp_path / "worker.py"  # MindSpore compiles only code it can read from a file
    script.write_text(worker + MEASURE)
    proc = subprocess.run([sys.executable, str(script), variant, str(layers), *map(str, args)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "GLOG_v": "3", "PYTHONPATH": REPO_ROOT})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("GROWTH_MB ")]
    assert lines, f"the {variant} worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1].split(" ", 1)[1])


def kept_per_layer_mb(tmp_path, worker: str, variant: str, depths: tuple[int, int], *args) -> float:
    """The slope of the peak over the depth: what each layer of `variant` keeps (MB)."""
    shallow, deep = (peak_growth_mb(tmp_path, worker, variant, layers, *args) for layers in depths)
    return (deep - shallow) / (depths[1] - depths[0])
