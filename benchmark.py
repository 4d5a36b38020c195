"""Throughput and memory of SKNet for one or two conv implementations, side by side.

    python benchmark.py --device_target CPU --batch_size 32 --image_size 224 --conv_impl auto --peer_python PY

For each implementation two fresh subprocesses build the network and measure, on random
data: (1) the compile time of the training graph, train-step images/s (loss, backward,
Momentum update) and the peak resident memory of training; (2) eval images/s (forward in
inference mode, as eval.py runs it: BatchNorm folded, CPU batches in calls of bounded size,
src/evaluation/predict.py), MINDIR inference images/s (the folded network, `mindspore.export` +
`nn.GraphCell(mindspore.load(...))`, the whole batch in one call) and their peak resident memory.
Each rate is the median of `--steps` timed steps after `--warmup` untimed ones. Separate processes
make each peak memory attributable (and a phase that runs out of memory does not take the other with it);
running both implementations in one call (alternately, `--rounds` times, reporting medians)
keeps the ratio meaningful on a shared, noisy machine: each ratio is taken within a round, and with
several rounds the table shows its median and, in brackets, its range over the rounds.

With `--peer_python PYTHON` (a Python that has torch and timm), timm's `skresnext50_32x4d` is measured
the same way in its own processes (tools/timm_peer_benchmark.py, with the same batch, image size,
steps and thread count, alternating with the implementations in every round), and the table gets
a `timm` column and the ratio of each implementation to it.

With `--profile train|infer` (one `--conv_impl`, CPU) nothing is timed: one process prints MindSpore's
kernel time per step of that phase by kernel type, i.e. where a step's time goes. Its timm counterpart
is `tools/timm_peer_benchmark.py --profile`; docs/performance.md compares the two.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from src.utils.errors import UserError, run_cli
from src.sknet50 import MODELS, STEM_TYPES
from src.utils.device import CONV_IMPLS, DEVICE_TARGETS, resolve_conv_impl

RESULT_PREFIX = "BENCHMARK_RESULT "
PEER = "timm"
PHASES = ("train", "infer")  # each measured in its own process; --profile takes one
PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools", "timm_peer_benchmark.py")
# (key, label, format)
METRICS = (
    ("train_img_s", "train step, img/s", "{:.2f}"),
    ("eval_img_s", "eval (forward), img/s", "{:.2f}"),
    ("mindir_img_s", "MINDIR inference, img/s", "{:.2f}"),
    ("train_peak_rss_gb", "peak RSS of training, GB", "{:.2f}"),
    ("eval_peak_rss_gb", "peak RSS of eval, GB", "{:.2f}"),
    ("infer_peak_rss_gb", "peak RSS of eval + MINDIR, GB", "{:.2f}"),
    ("train_compile_s", "train graph compile, s", "{:.1f}"),
    ("train_step_s", "train step, s (median)", "{:.3f}"),
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device_target", default="CPU", help=" | ".join(DEVICE_TARGETS))
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--conv_impl", default="auto",
                        help="one implementation or two separated by a comma, e.g. fast,onednn (auto: the device's "
                             "default, resolved as train.py resolves it)")
    parser.add_argument("--arch", default="sknet50", help=" | ".join(MODELS))
    parser.add_argument("--stem_type", default="imagenet", help=" | ".join(STEM_TYPES))
    parser.add_argument("--class_num", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")
    parser.add_argument("--steps", type=int, default=5, help="timed steps; the median is reported")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the implementations alternately this many times and report medians, with each "
                             "ratio taken within a round, so that a load change on a shared machine hits both")
    parser.add_argument("--peer_python", default=None,
                        help="a Python with torch and timm: also measure timm's skresnext50_32x4d and print ratios")
    parser.add_argument("--profile", default=None, metavar="PHASE",
                        help="train or infer: instead of measuring, print MindSpore's kernel time per step of this "
                             "phase by kernel type (one --conv_impl, CPU)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one implementation
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args: argparse.Namespace) -> None:
    """Reject bad flags with one line that names the flag and the fix."""
    if args.device_target not in DEVICE_TARGETS:
        raise UserError(f"--device_target {args.device_target!r} is unknown; use one of {', '.join(DEVICE_TARGETS)}")
    impls = args.conv_impl.split(",")
    if not 1 <= len(impls) <= 2:
        raise UserError(f"--conv_impl {args.conv_impl!r}: give one or two of {', '.join(CONV_IMPLS)} "
                        "separated by a comma, e.g. fast,onednn")
    args.impls = [resolve_conv_impl(impl, args.device_target) for impl in impls]
    if args.arch not in MODELS:
        raise UserError(f"--arch {args.arch!r} is unknown; use one of {', '.join(MODELS)}")
    if args.stem_type not in STEM_TYPES:
        raise UserError(f"--stem_type {args.stem_type!r} is unknown; use one of {', '.join(STEM_TYPES)}")
    for flag in ("batch_size", "image_size", "class_num", "steps", "rounds"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.warmup < 0:
        raise UserError(f"--warmup must be 0 or more, got {args.warmup}")
    if args.peer_python is not None:
        check_peer(args)
    if args.profile is not None and args.profile not in PHASES:
        raise UserError(f"--profile {args.profile!r} is unknown; use {' or '.join(PHASES)}")
    if args.profile is not None and (len(impls) != 1 or args.device_target != "CPU" or args.peer_python):
        raise UserError("--profile reads MindSpore's CPU kernel table: give one --conv_impl, --device_target CPU "
                        "and no --peer_python")


def check_peer(args: argparse.Namespace) -> None:
    """The peer measures the same network: timm has the ImageNet stem only, and no GPU/Ascend run here."""
    if args.stem_type != "imagenet" or args.device_target != "CPU":
        raise UserError("--peer_python compares with timm on the CPU with the ImageNet stem; use --device_target CPU "
                        "--stem_type imagenet")
    probe = subprocess.run([args.peer_python, "-c", "import torch, timm"], capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["it did not start"])[-1]
        raise UserError(f"--peer_python {args.peer_python} cannot import torch and timm ({last}); give a Python "
                        "that has both, e.g. a virtual environment with `pip install torch timm`")


def cpu_model() -> str:
    """The CPU's model name (ratios to timm differ by CPU model, so every table names it)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else (platform.processor() or "unknown CPU")


def median_seconds(run, warmup: int, steps: int) -> float:
    """Median wall time of `run()`, which must copy its result to the host (that synchronises)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_gb() -> float:
    """The peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def report(result: dict[str, float]) -> None:
    """Print the metrics measured so far, so that a worker killed later (e.g. out of memory) still counts."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def phase_step(args: argparse.Namespace, conv_impl: str, phase: str):
    """Build one phase (`train` or `infer`) of one resolved implementation in this process. Returns `step()`, which runs
    it once and copies the result to the host (that synchronises), the cell it calls (the train step or the
    folded network), the images and the labels.
    `train` compiles a train step (loss, backward, Momentum update); `infer` runs the network as eval.py
    and export.py run it: BatchNorm folded, CPU batches in calls of bounded size."""
    import numpy as np
    import mindspore as ms
    from mindspore import nn

    from src.evaluation.predict import Predictor, images_per_call
    from src.layers.fold_batchnorm import fold_batchnorm
    from src.sknet50 import create_model
    from src.training.loss import CrossEntropySmooth

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device(args.device_target)
    ms.set_seed(1)
    rng = np.random.default_rng(0)
    images = ms.Tensor(rng.standard_normal((args.batch_size, 3, args.image_size, args.image_size), dtype=np.float32))
    labels = ms.Tensor(rng.integers(0, args.class_num, args.batch_size).astype(np.int32))
    net = create_model(args.arch, args.class_num, stem_type=args.stem_type, conv_impl=conv_impl)
    if phase == "train":
        loss = CrossEntropySmooth(smooth_factor=0.1, num_classes=args.class_num)
        optimizer = nn.Momentum(net.trainable_params(), learning_rate=0.01, momentum=0.9, weight_decay=1e-4)
        train_step = nn.TrainOneStepCell(nn.WithLossCell(net, loss), optimizer)
        train_step.set_train(True)
        return (lambda: train_step(images, labels).asnumpy()), train_step, images, labels
    net.set_train(False)
    folded = create_model(args.arch, args.class_num, stem_type=args.stem_type, fold_bn=True, conv_impl=conv_impl)
    folded = fold_batchnorm(net, folded)
    folded.set_train(False)
    predict = Predictor(folded, images_per_call(args.image_size, args.device_target))
    host_images = images.asnumpy()
    return (lambda: predict(host_images)), folded, images, labels


def measure(args: argparse.Namespace, conv_impl: str, phase: str) -> None:
    """Run one phase (`train` or `infer`) for one implementation in this process, reporting as it goes."""
    import mindspore as ms
    from mindspore import nn

    step, cell, images, labels = phase_step(args, conv_impl, phase)
    result = {}
    if phase == "train":
        start = time.perf_counter()
        cell.compile(images, labels)
        result["train_compile_s"] = time.perf_counter() - start
        result["train_step_s"] = median_seconds(step, args.warmup, args.steps)
        result["train_img_s"] = args.batch_size / result["train_step_s"]
        result["train_peak_rss_gb"] = peak_rss_gb()
        report(result)
        return
    result["eval_img_s"] = args.batch_size / median_seconds(step, args.warmup, args.steps)
    result["eval_peak_rss_gb"] = result["infer_peak_rss_gb"] = peak_rss_gb()
    report(result)
    with tempfile.TemporaryDirectory(prefix="sknet_benchmark_") as tmp:
        path = os.path.join(tmp, "net")
        ms.export(cell, images, file_name=path, file_format="MINDIR")
        graph = nn.GraphCell(ms.load(f"{path}.mindir"))
        result["mindir_img_s"] = args.batch_size / median_seconds(lambda: graph(images).asnumpy(), args.warmup,
                                                                  args.steps)
    result["infer_peak_rss_gb"] = peak_rss_gb()
    report(result)


def profile(args: argparse.Namespace) -> str:
    """`--profile PHASE`: MindSpore's kernel time per step of one phase of one implementation, by kernel type,
    as a Markdown table (MindSpore's Profiler over `--steps` steps after `--warmup` ones, at least one)."""
    import csv
    import glob

    from mindspore import Profiler

    step = phase_step(args, args.impls[0], args.profile)[0]
    for _ in range(max(args.warmup, 1)):  # the first call compiles
        step()
    with tempfile.TemporaryDirectory(prefix="sknet_profile_") as tmp:
        profiler = Profiler(output_path=tmp)
        for _ in range(args.steps):
            step()
        profiler.stop()
        profiler.analyse()
        tables = glob.glob(os.path.join(tmp, "**", "cpu_op_type_info_*.csv"), recursive=True)
        if not tables:
            raise RuntimeError(f"MindSpore's Profiler wrote no kernel table under {tmp}")
        with open(tables[0], newline="", encoding="utf-8") as handle:
            kinds = [(row["op_type"], float(row["type_occurrences"]) / args.steps,
                      float(row["total_compute_time"]) / args.steps) for row in csv.DictReader(handle)]
    kinds.sort(key=lambda kind: -kind[2])
    total = sum(time_ms for _, _, time_ms in kinds)
    rows = ["| kernel type | kernels per step | ms per step | share |", "|---|---|---|---|"]
    rows += [f"| {name} | {count:.0f} | {time_ms:.1f} | {time_ms / total:.1%} |" for name, count, time_ms in kinds]
    rows.append(f"| all | {sum(count for _, count, _ in kinds):.0f} | {total:.1f} | 100% |")
    return "\n".join(rows)


def run_phase(args: argparse.Namespace, conv_impl: str, phase: str) -> dict[str, float]:
    """Measure one phase of `conv_impl` (or of the timm peer) in a fresh interpreter; return its metrics
    ({} if it failed)."""
    if conv_impl == PEER:
        command = [args.peer_python, PEER_SCRIPT, "--phase", phase, "--arch", args.arch,
                   "--batch_size", str(args.batch_size), "--image_size", str(args.image_size),
                   "--class_num", str(args.class_num), "--warmup", str(args.warmup), "--steps", str(args.steps),
                   "--threads", str(os.cpu_count())]
    else:
        command = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--worker", f"{conv_impl}:{phase}"]
    print(f"measuring conv_impl={conv_impl}, {phase} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "GLOG_v": "3"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        print(f"warning: the {phase} phase of conv_impl={conv_impl} stopped early (exit {proc.returncode}; -9 is "
              f"usually out of memory); what it finished is reported. Its last output:\n{tail}",
              file=sys.stderr, flush=True)
    return json.loads(lines[-1][len(RESULT_PREFIX):]) if lines else {}


def run_worker(args: argparse.Namespace, conv_impl: str) -> dict[str, float]:
    """Measure `conv_impl`: training and inference each in a fresh interpreter, so that each
    phase's peak memory is its own and one phase running out of memory does not stop the other."""
    result = {}
    for phase in PHASES:
        result.update(run_phase(args, conv_impl, phase))
    if not result:
        raise RuntimeError(f"the benchmark of conv_impl={conv_impl} failed in every phase (see the warnings above)")
    return result


def combine_rounds(rounds: list[dict[str, float]]) -> dict[str, float]:
    """The median of each metric over rounds; for the peak memory, the largest."""
    keys = set.intersection(*(set(r) for r in rounds))
    combined = {key: statistics.median(r[key] for r in rounds) for key in keys}
    for key in ("train_peak_rss_gb", "eval_peak_rss_gb", "infer_peak_rss_gb"):
        if key in combined:
            combined[key] = max(r[key] for r in rounds)
    return combined


def paired_ratio(a_rounds: list[dict[str, float]], b_rounds: list[dict[str, float]], key: str) -> str:
    """`key` of a over b, round by round (both ran in the same minutes), as the median ratio with the
    range over rounds when there are several; "-" if no round measured both."""
    ratios = sorted(a[key] / b[key] for a, b in zip(a_rounds, b_rounds) if key in a and key in b)
    if not ratios:
        return "-"
    spread = f" ({ratios[0]:.2f}-{ratios[-1]:.2f})" if len(ratios) > 1 else ""
    return f"{statistics.median(ratios):.2f}x{spread}"


def format_table(impls: list[str], rounds: dict[str, list[dict[str, float]]]) -> str:
    """A Markdown table: one column per implementation (and the timm peer, last, when measured) with the
    median over rounds, the ratio of the second implementation to the first, and the ratio of each
    implementation to timm; each ratio is paired by round (`paired_ratio`)."""
    ours = [impl for impl in impls if impl != PEER]
    ratios = [(ours[1], ours[0])] if len(ours) == 2 else []
    ratios += [(impl, PEER) for impl in ours if PEER in impls]
    results = [combine_rounds(rounds[impl]) for impl in impls]
    header = ["metric", *impls, *(f"{a} / {b}" for a, b in ratios)]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label, fmt in METRICS:
        cells = [label, *(fmt.format(r[key]) if key in r else "not measured" for r in results)]
        cells += [paired_ratio(rounds[a], rounds[b], key) for a, b in ratios]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> int:
    args = parse_args(sys.argv[1:])
    if args.worker is not None or args.profile is not None:
        if args.worker is not None:
            measure(args, *args.worker.split(":"))
        else:
            print(f"# kernel time per step, {args.profile}, conv_impl={args.impls[0]}, {args.arch} "
                  f"batch_size={args.batch_size} image_size={args.image_size}, {args.steps} profiled steps, "
                  f"{datetime.date.today().isoformat()}")
            print(profile(args), flush=True)
        # Skip interpreter teardown: MindSpore 2.10 prints spurious Cell.__del__ errors there.
        os._exit(0)
    impls = args.impls + ([PEER] if args.peer_python else [])
    rounds = {impl: [] for impl in impls}
    for _ in range(args.rounds):
        for impl in impls:
            rounds[impl].append(run_worker(args, impl))
    print(f"# SKNet benchmark, {datetime.date.today().isoformat()}, {cpu_model()}, {os.cpu_count()} CPUs, "
          f"{platform.node()}")
    print(f"# arch={args.arch} stem_type={args.stem_type} device_target={args.device_target} "
          f"batch_size={args.batch_size} image_size={args.image_size} fp32, GRAPH mode; "
          f"warm-up {args.warmup}, median of {args.steps} steps; {args.rounds} round(s), "
          "each phase of each implementation in its own process"
          + (f"; {PEER}: {args.peer_python} tools/timm_peer_benchmark.py, {os.cpu_count()} threads"
             if args.peer_python else ""))
    print(format_table(impls, rounds))
    return 0


if __name__ == "__main__":
    run_cli(main)
