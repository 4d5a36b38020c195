"""Evaluate a .ckpt file, a folder of them, or a .mindir over the whole test set (eval.py)."""
import os
from dataclasses import dataclass

import mindspore as ms

from src.data.pipeline import create_dataset
from src.evaluation.metrics import EvalResult, evaluate
from src.evaluation.per_class import per_class_table
from src.evaluation.predict import Predictor, images_per_call
from src.layers.fold_batchnorm import fold_batchnorm
from src.sknet50 import create_model
from src.utils.atomic_file import write_json_atomic
from src.utils.checkpoint_file import list_checkpoints, load_weights, weights_kind
from src.utils.config import Config
from src.utils.device import Placement, resolve_amp_level, resolve_conv_impl
from src.utils.errors import UserError
from src.utils.mindir import mindir_input_shape

# Settings that change the network's function without changing its parameters.
_SIDECAR_CHECKS = ("arch", "stem_type", "image_size", "class_num")


@dataclass
class Outcome:
    """The result of one checkpoint: metrics, or the error that stopped it."""
    path: str
    result: EvalResult | None = None
    error: str | None = None
    weights: str = "trained"  # "EMA" when the EMA weights were evaluated (--use_ema, or an EMA best.ckpt)


def find_targets(path: str | None) -> list[str]:
    """The files named by --checkpoint_path: one .ckpt/.mindir, or a folder's .ckpt files in natural order."""
    if not path:
        raise UserError("pass --checkpoint_path: a .ckpt file, a folder of .ckpt files, or a .mindir file")
    if os.path.isdir(path):
        found = list_checkpoints(path)
        if not found:
            raise UserError(f"{path} holds no .ckpt files; pass the folder train.py wrote (--output_path) or a file")
        return found
    if not os.path.isfile(path):
        raise UserError(f"--checkpoint_path {path} does not exist")
    if not path.endswith((".ckpt", ".mindir")):
        raise UserError(f"--checkpoint_path {path} is neither a .ckpt nor a .mindir file")
    return [path]


class CheckpointEvaluator:
    """Evaluates checkpoints of the configured network on the configured test set."""

    def __init__(self, cfg: Config, placement: Placement):
        self.cfg = cfg
        self.placement = placement
        self._net = None  # the trained network, which checkpoints are loaded into
        self._predict = None  # its inference form (BatchNorm folded), run in bounded calls

    def _dataset(self, batch_size: int):
        cfg = self.cfg
        return create_dataset(cfg.data_path, "eval", batch_size, cfg.image_size, eval_data_path=cfg.eval_data_path,
                              num_parallel_workers=cfg.num_parallel_workers, class_num=cfg.class_num)

    def _build(self) -> None:
        cfg, device_target = self.cfg, self.placement.device_target
        conv_impl = resolve_conv_impl(cfg.conv_impl, device_target)
        self._net = create_model(cfg.arch, cfg.class_num, stem_type=cfg.stem_type, conv_impl=conv_impl)
        folded = create_model(cfg.arch, cfg.class_num, stem_type=cfg.stem_type, conv_impl=conv_impl, fold_bn=True)
        amp_level = resolve_amp_level(cfg.amp_level, device_target)
        if amp_level != "O0":
            folded = ms.amp.auto_mixed_precision(folded, amp_level)
        folded.set_train(False)
        self._predict = Predictor(folded, images_per_call(cfg.image_size, device_target))

    def _warn_on_other_settings(self, path: str, meta: dict | None) -> None:
        for key in _SIDECAR_CHECKS:
            if meta and key in meta and meta[key] != getattr(self.cfg, key):
                print(f"warning: {path} was trained with {key}={meta[key]!r}, evaluating with "
                      f"{getattr(self.cfg, key)!r}; pass --config_path with the run's config.yaml to match",
                      flush=True)

    def evaluate_checkpoint(self, path: str, dataset) -> tuple[EvalResult, str]:
        """(metrics, "EMA" or "trained": the weights that were evaluated)."""
        if self._net is None:
            self._build()
        meta, _, _ = load_weights(self._net, path, use_ema=self.cfg.use_ema)
        self._warn_on_other_settings(path, meta)
        fold_batchnorm(self._net, self._predict.net)
        return evaluate(self._predict, dataset), weights_kind(meta, self.cfg.use_ema)

    def evaluate_mindir(self, path: str) -> EvalResult:
        if self.cfg.use_ema:
            raise UserError(f"--use_ema does not apply to {path}: a MINDIR holds the weights it was exported with "
                            "(export.py --use_ema true exports the EMA)")
        shape = mindir_input_shape(path)
        if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3]:
            raise UserError(f"{path} takes input of shape {list(shape)}, not square NCHW RGB images; "
                            "export it with export.py")
        if shape[2] != self.cfg.image_size:
            raise UserError(f"{path} takes {shape[2]}x{shape[3]} images but --image_size is {self.cfg.image_size}; "
                            f"pass --image_size {shape[2]} (or export the MINDIR at {self.cfg.image_size})")
        batch = shape[0]
        graph = ms.nn.GraphCell(ms.load(path))
        return evaluate(lambda images: graph(ms.Tensor(images)).asnumpy(), self._dataset(batch), fixed_batch=batch)

    def run(self, targets: list[str], stop_on_error: bool) -> list[Outcome]:
        outcomes = []
        dataset = None
        for path in targets:
            weights = "exported"
            try:
                if path.endswith(".mindir"):
                    result = self.evaluate_mindir(path)
                else:
                    dataset = dataset or self._dataset(self.cfg.eval_batch_size)
                    result, weights = self.evaluate_checkpoint(path, dataset)
            except UserError as err:
                if stop_on_error:
                    raise
                print(f"error: {err}", flush=True)
                outcomes.append(Outcome(path, error=str(err)))
                continue
            print(f"{os.path.basename(path)}: top1 {result.top1:.2%} | top5 {result.top5:.2%} | "
                  f"loss {result.loss:.4f} | {result.images} images | {weights} weights", flush=True)
            print(original_result_line(path, result), flush=True)
            outcomes.append(Outcome(path, result=result, weights=weights))
        return outcomes


def original_result_line(path: str, result: EvalResult) -> str:
    """The original model zoo's eval line, for scripts that parse it."""
    metrics = {"top_1_accuracy": result.top1, "top_5_accuracy": result.top5, "loss": result.loss}
    return f"result: {metrics} ckpt= {path}"


def best_outcome(outcomes: list[Outcome]) -> Outcome | None:
    """The evaluated checkpoint with the highest top-1 (the first one on a tie)."""
    scored = [o for o in outcomes if o.result is not None]
    return max(scored, key=lambda o: o.result.top1) if scored else None


def print_table(outcomes: list[Outcome]) -> None:
    width = max(len("checkpoint"), *(len(os.path.basename(o.path)) for o in outcomes))
    print(f"\n{'checkpoint':<{width}}  {'top1':>7}  {'top5':>7}  {'loss':>7}")
    for o in outcomes:
        name = os.path.basename(o.path)
        if o.result is None:
            print(f"{name:<{width}}  FAILED (see above)")
        else:
            print(f"{name:<{width}}  {o.result.top1:7.2%}  {o.result.top5:7.2%}  {o.result.loss:7.4f}")
    best = best_outcome(outcomes)
    if best is not None:
        print(f"best: {os.path.basename(best.path)} with top1 {best.result.top1:.2%}", flush=True)


def write_results(path: str, outcomes: list[Outcome]) -> None:
    """JSON with each checkpoint's metrics and per-image top-1 predictions (dataset order)."""
    best = best_outcome(outcomes)
    data = {
        "results": [{"checkpoint": os.path.abspath(o.path), "weights": o.weights, **o.result.to_dict()}
                    for o in outcomes if o.result is not None],
        "failed": [{"checkpoint": os.path.abspath(o.path), "error": o.error} for o in outcomes if o.error],
        "best": None if best is None else {"checkpoint": os.path.abspath(best.path), "top1": best.result.top1},
    }
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_json_atomic(path, data)
    except OSError as err:
        raise UserError(f"--result_json {path} could not be written ({err.strerror or err}); "
                        "pass a writable file path") from err


def check_result_json(path: str | None) -> None:
    """Refuse a --result_json that can never be written, before any checkpoint is evaluated."""
    if path and (os.path.isdir(path) or path.endswith(os.sep)):
        raise UserError(f"--result_json {path} is a folder; pass a file path such as {os.path.join(path, 'eval.json')}")


def evaluate_checkpoints(cfg: Config, placement: Placement) -> int:
    """eval.py's job; returns the exit code (1 when any checkpoint failed)."""
    check_result_json(cfg.result_json)
    targets = find_targets(cfg.checkpoint_path)
    is_folder = os.path.isdir(cfg.checkpoint_path)
    outcomes = CheckpointEvaluator(cfg, placement).run(targets, stop_on_error=not is_folder)
    if is_folder:
        print_table(outcomes)
    best = best_outcome(outcomes)
    if best is not None:
        print(f"\nper-class accuracy of {os.path.basename(best.path)}:\n{per_class_table(best.result.confusion)}",
              flush=True)
    if cfg.result_json:
        write_results(cfg.result_json, outcomes)
        print(f"results written to {cfg.result_json}", flush=True)
    failed = [o for o in outcomes if o.error]
    if failed:
        print(f"error: {len(failed)} of {len(outcomes)} checkpoints could not be evaluated: "
              + ", ".join(os.path.basename(o.path) for o in failed), flush=True)
        return 1
    return 0
