"""Device, graph mode and distributed setup, and the per-device policies (AMP level, conv_impl).

Everything that depends on the device is decided here, once; the model only receives the result.
"""
import contextlib
import functools
import os
import shutil
import sys
from dataclasses import dataclass

from src.utils.errors import UserError

# MindSpore reads GLOG_v when it is first imported; its INFO/WARNING chatter drowns the training
# log, so entry points import this module before anything that imports MindSpore.
os.environ.setdefault("GLOG_v", "3")

DEVICE_TARGETS = ("Ascend", "GPU", "CPU")  # also the order in which `auto` tries them
DEVICE_TARGET_CHOICES = ("auto", *DEVICE_TARGETS)
# What a chip needs besides MindSpore 2.10's one wheel, which carries the GPU and Ascend plugins (README
# "Environment requirements").
DEVICE_NEEDS = {
    "GPU": "an NVIDIA driver with CUDA 11.1 + cuDNN 8.0.x or CUDA 11.6 + cuDNN 8.5.x on the library path "
           "(CUDA 12 / cuDNN 9 do not match its plugin)",
    "Ascend": "the CANN toolkit that matches this MindSpore, with its set_env.sh sourced",
}
AMP_LEVELS = ("auto", "O0", "O1", "O2", "O3")
# The layers a network can be built from (src.layers.create_layers maps each to its cells); `fast` and `onednn`
# are built for MindSpore's CPU backend only.
CPU_CONV_IMPLS = ("fast", "onednn")
MODEL_CONV_IMPLS = ("native", "split", *CPU_CONV_IMPLS)  # what the model receives: `auto` resolved
CONV_IMPLS = ("auto", *MODEL_CONV_IMPLS)
# `sink_size auto` on GPU/Ascend: 50 steps per host round trip hide the host's latency, while progress
# lines and a stop signal still come within seconds (SIGTERM is honoured at a sink's end).
AUTO_SINK_LIMIT = 50


@dataclass(frozen=True)
class Placement:
    """Where this process runs: its rank among `rank_size` data-parallel processes."""
    device_target: str
    rank_id: int = 0
    rank_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, config and metrics, and runs the in-training eval."""
        return self.rank_id == 0


def quiet_mindspore_exit() -> None:
    """Hide MindSpore 2.10's harmless 'Cell.__del__ ... total_instance_count' message at exit.

    At interpreter shutdown `Cell.__del__` can run after its class attributes are gone; Python
    then prints "Exception ignored in ...". Only that exact case is dropped; every other
    unraisable exception is still reported.
    """
    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, AttributeError) and \
                "total_instance_count" in str(unraisable.exc_value):
            return
        previous(unraisable)

    sys.unraisablehook = hook


def available_device_targets() -> tuple[str, ...]:
    """The targets this MindSpore can use (its plugins were loaded at import; the check itself is a lookup)."""
    import mindspore as ms  # here, not at the top: entry points import this module before MindSpore loads

    return tuple(target for target in DEVICE_TARGETS if ms.hal.is_available(target))


def resolve_device_target(requested: str) -> str:
    """`auto` becomes Ascend, else GPU, else CPU, whichever this MindSpore can use, and the choice is printed
    in one line; any other value is returned as given (set_up_device refuses a target that is not there)."""
    if requested != "auto":
        return requested
    available = available_device_targets()
    chosen = next(target for target in DEVICE_TARGETS if target in available or target == "CPU")
    missing = [target for target in DEVICE_TARGETS[:DEVICE_TARGETS.index(chosen)]]
    why = f" (no {' or '.join(missing)} available to this MindSpore)" if missing else ""
    print(f"device_target auto -> {chosen}{why}", flush=True)
    return chosen


def set_up_device(device_target: str, device_id: int = 0, run_distribute: bool = False,
                  deterministic: bool = False) -> Placement:
    """GRAPH mode on `device_target`; with `run_distribute`, join the data-parallel group.

    Args:
        device_target: Ascend, GPU or CPU; a target the installed MindSpore cannot use is a `UserError`.
        device_id: the device of a single-process run (under msrun each rank gets its own).
        run_distribute: call `mindspore.communication.init()` (HCCL, NCCL or MCCL on CPU) and set
            DATA_PARALLEL with averaged gradients.
        deterministic: MindSpore's deterministic kernels (set before `init()`, so collectives are too).
    """
    import mindspore as ms  # here, not at the top: entry points import this module before MindSpore loads

    quiet_mindspore_exit()
    if device_target not in DEVICE_TARGETS:
        raise UserError(f"--device_target {device_target!r} is not one of {', '.join(DEVICE_TARGETS)}")
    if not ms.hal.is_available(device_target):
        raise UserError(f"--device_target {device_target} is not available in this MindSpore ({ms.__version__}): "
                        f"its wheel carries the {device_target} plugin, which needs {DEVICE_NEEDS[device_target]} "
                        "(README \"Environment requirements\"); or pass --device_target auto or CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    if deterministic:
        ms.set_deterministic(True)
    if run_distribute:
        # msrun (which sets MS_ROLE) assigns each rank its device; the classic Ascend rank-table launch
        # (scripts/run_distribute_train.sh with RANK_TABLE_FILE) passes each rank its --device_id.
        ms.set_device(device_target, None if os.environ.get("MS_ROLE") else device_id)
        from mindspore.communication import get_group_size, get_rank, init
        try:
            init()
        except RuntimeError as err:
            raise UserError(f"--run_distribute could not join the process group ({str(err).splitlines()[0]}); "
                            "start training with msrun or scripts/run_distribute_train.sh") from err
        rank_size = get_group_size()
        ms.reset_auto_parallel_context()
        ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                     device_num=rank_size)
        return Placement(device_target, get_rank(), rank_size)
    if device_target == "CPU":
        ms.set_device(device_target)
    else:
        ms.set_device(device_target, device_id)
    return Placement(device_target)


def resolve_amp_level(amp_level: str, device_target: str) -> str:
    """`auto` means O2 (fp16 compute, fp32 BN and master weights) on GPU/Ascend, O0 (fp32) on CPU."""
    if amp_level not in AMP_LEVELS:
        raise UserError(f"--amp_level {amp_level!r} is not one of {', '.join(AMP_LEVELS)}")
    if amp_level == "auto":
        return "O0" if device_target == "CPU" else "O2"
    if device_target == "CPU" and amp_level != "O0":
        raise UserError(f"--amp_level {amp_level} needs a GPU or Ascend: MindSpore's CPU backend has no fp16 "
                        "convolutions; use --amp_level auto or O0 on the CPU")
    return amp_level


def resolve_conv_impl(conv_impl: str, device_target: str) -> str:
    """The one judge of `conv_impl`: refuse one the device cannot run, and map `auto` to the fastest that works.

    `auto` is `onednn` on the CPU where its C++ ops can be built (a C++ compiler is on PATH; they are built
    once, `src.layers.cpu`), else `fast`, MindSpore ops only, ~5x MindSpore's own CPU convs; the choice is
    printed once, with its reason. On GPU and Ascend `auto` is `native`: mindcv trains skresnext50_32x4d on
    8 Ascend 910 and resnext50_32x4d on Atlas 800T A2 (MindSpore 2.5, graph mode) with plain grouped
    convs (group=32), although MindSpore's `nn.Conv2d` docstring still says Ascend runs only depthwise
    ones; `split` (one conv per group, the same parameters) stays the opt-in fallback, and an error on
    Ascend that mentions groups says so (`conv_impl_hint`). `fast` and `onednn` are CPU-only, so a CPU
    run's config.yaml that carries one over never runs it silently on a chip.
    """
    if conv_impl not in CONV_IMPLS:
        raise UserError(f"--conv_impl {conv_impl!r} is not one of {', '.join(CONV_IMPLS)}")
    if device_target not in DEVICE_TARGETS:
        raise UserError(f"--device_target {device_target!r} is not one of {', '.join(DEVICE_TARGETS)}")
    if conv_impl in CPU_CONV_IMPLS and device_target != "CPU":
        raise UserError(f"conv_impl {conv_impl} (from --conv_impl or a --config_path file such as a CPU run's config.yaml) "
                        f"is CPU-only; on {device_target} use --conv_impl auto")
    if conv_impl != "auto":
        return conv_impl
    return _cpu_auto(cpu_ops_compiler()) if device_target == "CPU" else "native"


def cpu_ops_compiler() -> str:
    """The C++ compiler that builds the CPU ops of `onednn` (src.layers.cpu): `$CXX`, else g++."""
    return os.environ.get("CXX") or "g++"


@functools.lru_cache(maxsize=None)
def _cpu_auto(compiler: str) -> str:
    """`auto` on the CPU for this compiler, with one line saying why (once per process)."""
    if shutil.which(compiler):
        print(f"conv_impl auto: onednn ({compiler} builds its C++ ops once; --conv_impl fast needs no compiler)",
              flush=True)
        return "onednn"
    print(f"conv_impl auto: fast (no C++ compiler {compiler!r} on PATH for onednn, the faster path; install g++ "
          "or set CXX)", flush=True)
    return "fast"


@contextlib.contextmanager
def conv_impl_hint(conv_impl: str, device_target: str):
    """Around the first run of a network: on Ascend, an error that mentions groups while the convs are native
    becomes one line that says to try `--conv_impl split` (only a chip can tell whether its CANN compiles
    grouped convs)."""
    try:
        yield
    except (RuntimeError, TypeError, ValueError) as err:
        first_line = (str(err).strip().splitlines() or [""])[0]
        if device_target == "Ascend" and conv_impl in ("auto", "native") and "group" in str(err).lower():
            raise UserError(f"Ascend failed on a grouped convolution ({first_line[:200]}); try --conv_impl split "
                            "(one conv per group, the same checkpoints)") from err
        raise


def check_device_choices(cfg) -> None:
    """Refuse an AMP level or conv_impl that `cfg.device_target` cannot run, before any device is set up."""
    resolve_amp_level(cfg.amp_level, cfg.device_target)
    resolve_conv_impl(cfg.conv_impl, cfg.device_target)


def resolve_sink_size(sink_size: str, device_target: str, steps_per_epoch: int) -> int:
    """Steps per host round trip: `auto` = 1 on the CPU (no data sink there), on GPU/Ascend the largest
    divisor of `steps_per_epoch` up to AUTO_SINK_LIMIT. A sink must end at the epoch's end (evaluation and
    checkpoints happen there), so an explicit size must divide the epoch."""
    divisors = [size for size in range(1, steps_per_epoch + 1) if steps_per_epoch % size == 0]
    if sink_size == "auto":
        return 1 if device_target == "CPU" else max(size for size in divisors if size <= AUTO_SINK_LIMIT)
    if int(sink_size) not in divisors:
        shown = ", ".join(str(size) for size in divisors if size <= 100)
        raise UserError(f"--sink_size {sink_size} does not divide the {steps_per_epoch} steps of an epoch; use auto or "
                        f"one of {shown}")
    return int(sink_size)
