"""Write the timm-equivalence fixture used by tests/test_convert_timm.py.

Needs torch and timm (not needed by CI, which only reads the committed output):
    pip install torch==2.14.1 torchvision==0.29.1 timm
    python tools/make_timm_fixture.py tests/fixtures/timm_tiny

Builds a tiny timm SK-ResNeXt with the same structure as `src.sknet50.sknet_tiny`
(layers [1,1,1,1], stem width 64, cardinality 4, r=4, L=8), randomises
its BN statistics so that eval mode is non-trivial, and saves its weights (safetensors),
one input batch and timm's eval-mode logits.
"""
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from timm.models.resnet import ResNet
from timm.models.sknet import SelectiveKernelBottleneck


def main(out_dir: str) -> None:
    torch.manual_seed(0)
    # Inner widths = floor(channels * base_width / 64) * cardinality = 16, 32, 64, 128;
    # out widths = 4 * channels = 32 .. 256; fuse width = max(C/4, 8): that is sknet_tiny.
    model = ResNet(block=SelectiveKernelBottleneck, layers=(1, 1, 1, 1), channels=(8, 16, 32, 64),
                   cardinality=4, base_width=32, num_classes=10, zero_init_last=False,
                   block_args=dict(sk_kwargs=dict(rd_ratio=1 / 4, rd_divisor=8, split_input=False)))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    model.eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = model(images)
    os.makedirs(out_dir, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out_dir, "weights.safetensors"))
    np.save(os.path.join(out_dir, "input.npy"), images.numpy())
    np.save(os.path.join(out_dir, "logits.npy"), logits.numpy())
    print(f"wrote {out_dir}: {sum(p.numel() for p in model.parameters())} parameters, logits {tuple(logits.shape)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/timm_tiny")
