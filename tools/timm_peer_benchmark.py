"""The PyTorch + timm side of `benchmark.py --peer_python PYTHON`: the same network, measured the same way.

    PYTHON tools/timm_peer_benchmark.py --phase train|infer --arch sknet50 --batch_size 32 --image_size 32

Runs with a Python that has torch and timm (they are not project dependencies); it imports nothing
of the project. timm's `skresnext50_32x4d` is SKNet-50 (the equivalence is tested in
tests/unit/test_convert_timm.py); `sknet_tiny` is built from the same timm blocks with the tiny
variant's widths. Like benchmark.py's own workers, one phase per process: `train` times
forward + backward + an SGD momentum step, `infer` times the forward pass in eval mode; each rate is
the median of `--steps` timed steps after `--warmup` untimed ones, on random data, in fp32. It prints
`BENCHMARK_RESULT {json}` lines with the keys benchmark.py uses.
"""
import argparse
import json
import os
import resource
import statistics
import time

import torch
from timm.models import create_model
from timm.models.resnet import ResNet
from timm.models.sknet import SelectiveKernelBottleneck

RESULT_PREFIX = "BENCHMARK_RESULT "


def build(arch: str, class_num: int) -> torch.nn.Module:
    if arch == "sknet50":
        return create_model("skresnext50_32x4d", num_classes=class_num)
    # sknet_tiny (src/sknet50.py), built as tools/make_timm_fixture.py builds it: one unit per stage,
    # out widths 32..256, inner widths 16..128, G=4, r=4, L=8.
    return ResNet(block=SelectiveKernelBottleneck, layers=(1, 1, 1, 1), channels=(8, 16, 32, 64), cardinality=4,
                  base_width=32, num_classes=class_num, zero_init_last=False,
                  block_args=dict(sk_kwargs=dict(rd_ratio=1 / 4, rd_divisor=8, split_input=False)))


def median_seconds(step, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("train", "infer"), required=True)
    parser.add_argument("--arch", choices=("sknet50", "sknet_tiny"), default="sknet50")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--class_num", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--profile", action="store_true",
                        help="then print torch.profiler's time per operator over --steps more steps (self CPU)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    net = build(args.arch, args.class_num)
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    labels = torch.randint(0, args.class_num, (args.batch_size,))
    result = {}
    if args.phase == "train":
        net.train()
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(images), labels)
            loss.backward()
            optimizer.step()
            return loss.item()

        start = time.perf_counter()
        step()  # the first step is PyTorch's nearest counterpart of a graph compile
        result["train_compile_s"] = time.perf_counter() - start
        result["train_step_s"] = median_seconds(step, args.warmup, args.steps)
        result["train_img_s"] = args.batch_size / result["train_step_s"]
        result["train_peak_rss_gb"] = peak_rss_gb()
        run = step
    else:
        net.eval()

        def forward():
            with torch.inference_mode():
                return net(images).sum().item()

        result["eval_img_s"] = args.batch_size / median_seconds(forward, args.warmup, args.steps)
        result["eval_peak_rss_gb"] = peak_rss_gb()
        run = forward
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    if args.profile:  # the counterpart of `benchmark.py --profile PHASE` (docs/performance.md)
        with torch.profiler.profile() as profiler:
            for _ in range(args.steps):
                run()
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
