"""Export a trained checkpoint to MINDIR (default), ONNX or AIR, then check the exported file.

    python export.py --ckpt_file sknet50.ckpt --file_name sknet50 --file_format MINDIR --batch_size 1

The variant (arch, stem_type, class_num) and the input size (image_size) come from the checkpoint's
sidecar or its run's config.yaml (src/utils/run_settings.py), else from the config and its flags; a
flag that contradicts the checkpoint, or a checkpoint that does not fit, is an error. `--use_ema true` exports the EMA
weights of a training checkpoint of a run with --ema_decay. The exported network has every
BatchNorm folded into the conv before it (src/layers/fold_batchnorm.py: fewer kernels on every
runtime). After exporting, the file is reloaded (MINDIR with MindSpore, ONNX with onnxruntime when
installed) and run on a sample batch, and the largest difference to the output of the trained,
unfolded network is printed relative to the largest logit; a file beyond the device's limit
(`check_exported`: 1e-4 of it on the CPU, 2e-2 on GPU/Ascend, or 30x the network's own change when its
input moves by one ulp, for a badly conditioned network) is refused.
"""
import os
import sys

import numpy as np

# first: it quiets MindSpore's log
from src.utils.device import check_device_choices, conv_impl_hint, resolve_conv_impl, set_up_device
import mindspore as ms  # noqa: E402  (after src.utils.device, which sets MindSpore's log level)
from mindspore import nn  # noqa: E402

from src.layers.fold_batchnorm import fold_batchnorm  # noqa: E402
from src.sknet50 import create_model  # noqa: E402
from src.utils.atomic_file import atomic_path  # noqa: E402
from src.utils.checkpoint_file import load_weights, weights_kind  # noqa: E402
from src.utils.config import load_config  # noqa: E402
from src.utils.errors import UserError, run_cli  # noqa: E402
from src.utils.run_settings import follow_run  # noqa: E402

FORMATS = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}
# Limits on max |exported - network| / max(1, max |logit|). An eval-mode network with little-trained
# BatchNorm statistics has logits of 1e3 to 1e13, so only a limit relative to them tells rounding from
# a wrong graph. On the CPU both run in fp32: folding and reordering give ~5e-7 of the largest logit.
CPU_RELATIVE_DIFFERENCE = 1e-4
# On Ascend the reloaded graph runs its convs and matmuls in fp16 by default (about 1e-3 relative per
# layer); an error in the graph is far above it.
CHIP_RELATIVE_DIFFERENCE = 2e-2
# A network whose BatchNorms amplify (little trained) also amplifies fp32 rounding: measured on sknet50 with
# BN gamma 2.5, two correct unfolded convolutions differ by 7x, the folded one by 0.2x, the logits' change
# when the input moves by one ulp. The limit is at least this many times that change.
ROUNDING_MARGIN = 30


def check_settings(cfg) -> None:
    """Refuse settings that cannot produce a usable file, before building anything."""
    if cfg.file_format == "AIR" and cfg.device_target != "Ascend":
        raise UserError(f"AIR export needs an Ascend device, but device_target is {cfg.device_target}; "
                        "export MINDIR (the 310 app reads it) or ONNX here")
    if cfg.file_format == "AIR":
        print("note: mindspore.export marks AIR as deprecated (docs r2.3 and later); for Ascend 310 export MINDIR, "
              "which MindSpore Lite and ascend310_infer/ read (docs/inference.md)")
    if not cfg.ckpt_file:
        raise UserError("--ckpt_file is required: the trained .ckpt to export")
    if cfg.export_batch_size < 1 or cfg.image_size < 1:
        raise UserError(f"--batch_size ({cfg.export_batch_size}) and --image_size ({cfg.image_size}) must be positive")
    check_device_choices(cfg)


def exported_conv_impl(cfg) -> str:
    """The conv_impl of the exported network."""
    # An exported file runs elsewhere (Ascend 310, ONNX Runtime), so `auto` exports the plain conv
    # operator that every backend has; the CPU-only `fast` path (Im2Col, no ONNX mapping) only on request.
    conv_impl = "native" if cfg.conv_impl == "auto" else cfg.conv_impl
    if conv_impl == "fast" and cfg.file_format != "MINDIR":
        raise UserError(f"--conv_impl fast cannot be exported as {cfg.file_format} (its Im2Col op has no "
                        "mapping there); export with --conv_impl native (the default, auto)")
    if conv_impl == "onednn":
        raise UserError("--conv_impl onednn cannot be exported (its custom op is a library in this machine's "
                        "build cache); export with --conv_impl native (the default, auto) or fast")
    return resolve_conv_impl(conv_impl, cfg.device_target)


def build_network(cfg):
    """The configured variant with the checkpoint's weights (verified, never partly loaded), in inference mode."""
    net = create_model(cfg.arch, cfg.class_num, stem_type=cfg.stem_type, conv_impl=exported_conv_impl(cfg))
    meta, _, _ = load_weights(net, cfg.ckpt_file, f"checkpoint {cfg.ckpt_file}", use_ema=cfg.use_ema)
    print(f"exporting the {weights_kind(meta, cfg.use_ema)} weights of {cfg.ckpt_file}")
    net.set_train(False)
    return net


def inference_form(net, cfg):
    """`net` with every BatchNorm folded into the layer before it: what is exported."""
    folded = create_model(cfg.arch, cfg.class_num, stem_type=cfg.stem_type, conv_impl=exported_conv_impl(cfg),
                          fold_bn=True)
    folded.set_train(False)
    return fold_batchnorm(net, folded)


def export_atomic(net, sample, file_name: str, file_format: str) -> str:
    """Export to `file_name` + the format's suffix, through a temporary name, and return the path."""
    suffix = FORMATS[file_format]
    path = file_name + suffix
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"the folder of --file_name {file_name} does not exist; create {folder} first")
    with atomic_path(path, suffix=suffix) as tmp:
        ms.export(net, ms.Tensor(sample), file_name=tmp[:-len(suffix)], file_format=file_format)
    return path


def run_exported(path: str, file_format: str, sample: np.ndarray) -> np.ndarray | None:
    """Output of the exported file on `sample`, or None when this machine cannot run it."""
    if file_format == "MINDIR":
        return nn.GraphCell(ms.load(path))(ms.Tensor(sample)).asnumpy()
    if file_format == "ONNX":
        try:
            import onnxruntime
        except ImportError:
            print("onnxruntime is not installed, so the ONNX file was not run (pip install onnxruntime)")
            return None
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: sample})[0]
    print("an AIR file runs only on Ascend (convert it with atc), so it was not run here")
    return None


def main(argv: list[str] | None = None) -> int:
    cfg = load_config(argv, description=__doc__, flag_aliases={"batch_size": "export_batch_size"}, script="export")
    check_settings(cfg)
    follow_run(cfg, cfg.ckpt_file)
    set_up_device(cfg.device_target, cfg.device_id)
    with conv_impl_hint(cfg.conv_impl, cfg.device_target):
        net = build_network(cfg)
        shape = (cfg.export_batch_size, 3, cfg.image_size, cfg.image_size)
        sample = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        path = export_atomic(inference_form(net, cfg), sample, cfg.file_name, cfg.file_format)
        print(f"exported {path}: {cfg.file_format}, input float32 {list(shape)} (NCHW), output {cfg.class_num} classes")
        exported = run_exported(path, cfg.file_format, sample)
        if exported is not None:
            expected = net(ms.Tensor(sample)).asnumpy()
            nudged = net(ms.Tensor(np.nextafter(sample, np.float32(np.inf)))).asnumpy()
            check_exported(path, exported, expected, cfg.device_target, float(np.abs(nudged - expected).max()))
    return 0


def check_exported(path: str, exported: np.ndarray, expected: np.ndarray, device_target: str,
                   sensitivity: float = 0.0) -> None:
    """Print how far the exported file's logits are from the network's; refuse a file beyond the device's limit.

    The limit is relative to the logits' scale, max(1, largest |logit|) of the network: `CPU_RELATIVE_DIFFERENCE`
    (1e-4) of it on the CPU, which computes both in fp32, and `CHIP_RELATIVE_DIFFERENCE` (2e-2) on GPU and Ascend,
    which may compute in fp16; or `ROUNDING_MARGIN` (30) x `sensitivity`, the largest change of the network's
    logits when its input moves by one ulp, if that is more (a network that amplifies rounding).
    """
    difference = float(np.abs(exported - expected).max())
    scale = max(1.0, float(np.abs(expected).max()))
    tolerance = CPU_RELATIVE_DIFFERENCE if device_target == "CPU" else CHIP_RELATIVE_DIFFERENCE
    limit = max(tolerance * scale, ROUNDING_MARGIN * sensitivity)
    reason = f"{tolerance:g} of the scale on {device_target}" if limit == tolerance * scale else \
        f"{ROUNDING_MARGIN}x the {sensitivity:.2g} that a one-ulp change of the input makes"
    top1 = float(np.mean(exported.argmax(axis=1) == expected.argmax(axis=1)))
    print(f"max |exported - network| on a sample batch: {difference:.3g}, {difference / scale:.2g} of the "
          f"logits' scale {scale:.3g} (limit {limit:.3g}: {reason}; top-1 agreement {top1:.0%})")
    if not difference <= limit:  # `not <=`: a NaN difference is refused too
        raise UserError(f"{path} differs from the network by {difference:.3g}, {difference / scale:.2g} of the "
                        f"logits' scale {scale:.3g} (above {limit:.3g}: {reason}); the file is kept "
                        "for inspection, do not deploy it")


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
