"""Convert timm `skresnext50_32x4d` weights (safetensors) into an SKNet-50 MindSpore checkpoint.

    python -m src.convert_timm SRC.safetensors DST.ckpt [--class_num N] [--arch sknet50]

Every timm tensor is mapped to one of our parameters by name; a name or shape that does not
fit is an error, never a partial conversion. When `--class_num` differs from the number of
classes in the file, the classifier is left out so that it is freshly initialised.
"""
import argparse
import re

import mindspore as ms
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

from src.sknet50 import create_model
from src.utils.checkpoint_file import CLASSIFIER, save_checkpoint_atomic
from src.utils.errors import UserError, run_cli

# timm name pattern -> our name template. Applied in order; the first match wins.
_RENAMES = (
    (r"^conv1\.weight$", "stem.conv.weight"),
    (r"^bn1\.(.+)$", r"stem.bn.\1"),
    (r"^(layer\d\.\d+)\.conv2\.attn\.(.+)$", r"\1.sk_conv.attention.\2"),
    (r"^(layer\d\.\d+)\.conv2\.(.+)$", r"\1.sk_conv.\2"),
    (r"^(layer\d\.\d+)\.downsample\.0\.(.+)$", r"\1.downsample.conv.\2"),
    (r"^(layer\d\.\d+)\.downsample\.1\.(.+)$", r"\1.downsample.bn.\2"),
    (r"^(layer\d\.\d+\.conv[13]\..+)$", r"\1"),
    (r"^(fc\.(weight|bias))$", r"\1"),
)
_BN_SUFFIXES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def load_safetensors(path: str) -> dict[str, np.ndarray]:
    """Read a safetensors file into numpy arrays (no torch needed)."""
    try:
        return load_file(path)
    except FileNotFoundError as err:
        raise UserError(f"{path}: no such file; pass timm's skresnext50_32x4d .safetensors file") from err
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        raise UserError(f"{path}: not a readable fp32/fp16 safetensors file ({err})") from err


def rename_timm(name: str, is_bn: bool) -> str | None:
    """Our parameter name for a timm tensor name, or None when timm keeps a counter we do not."""
    if name.endswith("num_batches_tracked"):
        return None
    for pattern, template in _RENAMES:
        if re.match(pattern, name):
            ours = re.sub(pattern, template, name)
            if is_bn:
                head, _, suffix = ours.rpartition(".")
                ours = f"{head}.{_BN_SUFFIXES.get(suffix, suffix)}"
            return ours
    raise UserError(f"timm tensor {name!r} has no SKNet counterpart; is this an skresnext50_32x4d file?")


def _is_batchnorm(name: str) -> bool:
    return bool(re.search(r"(^bn1\.|\.bn\.|downsample\.1\.)", name))


def convert_timm_state(tensors: dict[str, np.ndarray], net) -> tuple[dict[str, np.ndarray], list[str]]:
    """Map timm tensors onto `net`'s parameters.

    Returns (our name -> array, skipped names). The classifier is skipped when its class count
    differs from `net`'s; any other missing, extra or mis-shaped tensor raises `UserError`.
    """
    expected = {name: tuple(param.shape) for name, param in net.parameters_and_names()}
    converted: dict[str, np.ndarray] = {}
    for timm_name, array in tensors.items():
        ours = rename_timm(timm_name, _is_batchnorm(timm_name))
        if ours is None:
            continue
        if ours not in expected:
            raise UserError(f"timm tensor {timm_name!r} maps to {ours!r}, which the network does not have; "
                            "check --arch and the model variant of the file")
        if array.ndim == 4 and len(expected[ours]) == 2:  # 1x1 conv used as a dense layer
            array = array.reshape(array.shape[:2])
        converted[ours] = np.ascontiguousarray(array.astype(np.float32))
    skipped = []
    if "fc.weight" in converted and converted["fc.weight"].shape != expected["fc.weight"]:
        skipped = [name for name in CLASSIFIER if converted.pop(name, None) is not None]
    for name, shape in expected.items():
        if name in skipped:
            continue
        if name not in converted:
            raise UserError(f"the timm file has no tensor for {name!r}; is it an skresnext50_32x4d file?")
        if converted[name].shape != shape:
            raise UserError(f"shape mismatch for {name!r}: file has {converted[name].shape}, network has {shape}")
    return converted, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="timm skresnext50_32x4d .safetensors file")
    parser.add_argument("dst", help="MindSpore .ckpt to write")
    parser.add_argument("--class_num", type=int, default=None,
                        help="classes of the target network (default: those of the file)")
    parser.add_argument("--arch", default="sknet50", help="network variant (default sknet50)")
    args = parser.parse_args(argv)

    tensors = load_safetensors(args.src)
    if "fc.weight" not in tensors:
        raise UserError(f"{args.src}: no fc.weight tensor; is this an skresnext50_32x4d file?")
    class_num = args.class_num or tensors["fc.weight"].shape[0]
    net = create_model(args.arch, class_num, stem_type="imagenet")
    converted, skipped = convert_timm_state(tensors, net)
    save_checkpoint_atomic([{"name": k, "data": ms.Tensor(v)} for k, v in converted.items()], args.dst)
    print(f"wrote {args.dst}: {len(converted)} tensors for {args.arch} with {class_num} classes"
          + (f"; skipped the classifier ({', '.join(skipped)}): the file has "
             f"{tensors['fc.weight'].shape[0]} classes" if skipped else ""))
    return 0


if __name__ == "__main__":
    run_cli(main)
