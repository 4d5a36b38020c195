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
from src.training.checkpoint_manager import BEST_NAME
from src.utils.atomic_file import write_json_atomic
from src.utils.checkpoint_file import CorruptCheckpoint, list_checkpoints, load_weights, read_sidecar, weights_kind
from src.utils.config import Config
from src.utils.device import Placement, resolve_amp_level, resolve_conv_impl
from src.utils.errors import UserError
from src.utils.mindir import mindir_image_input
from src.utils.run_settings import NETWORK_KEYS, follow_run


@dataclass
class Target:
    """A file to evaluate; `same_as` names the epoch checkpoint that holds the same weights (a best.ckpt)."""
    path: str
    name: str
    same_as: str | None = None


@dataclass
class Outcome:
    """The result of one checkpoint: metrics, the error that stopped it, or the twin it was not evaluated for."""
    path: str
    result: EvalResult | None = None
    error: str | None = None
    weights: str = "trained"  # "EMA" when the EMA weights were evaluated (--use_ema, or an EMA best.ckpt)
    name: str = ""  # as listed (`Target.name`); the file name by default
    same_as: str | None = None

    def __post_init__(self):
        self.name = self.name or os.path.basename(self.path)


def find_targets(path: str | None, use_ema: bool = False) -> list[Target]:
    """The files named by --checkpoint_path: one .ckpt/.mindir, or a run folder's checkpoints (`folder_targets`)."""
    if not path:
        raise UserError("pass --checkpoint_path: a .ckpt file, a folder of .ckpt files, or a .mindir file")
    if os.path.isdir(path):
        found = folder_targets(path, use_ema)
        if not found:
            raise UserError(f"{path} holds no .ckpt files; pass the folder train.py wrote (--output_path) or a file")
        return found
    if not os.path.isfile(path):
        raise UserError(f"--checkpoint_path {path} does not exist")
    if not path.endswith((".ckpt", ".mindir")):
        raise UserError(f"--checkpoint_path {path} is neither a .ckpt nor a .mindir file")
    return [Target(path, os.path.basename(path))]


def _step_record(path: str) -> dict | None:
    """The sidecar of `path` when it names a global step; None otherwise (evaluation reports a bad one)."""
    try:
        meta = read_sidecar(path)
    except CorruptCheckpoint:
        return None
    return meta if meta and isinstance(meta.get("global_step"), int) else None


def folder_targets(folder: str, use_ema: bool) -> list[Target]:
    """A folder's checkpoints in natural order, with best.ckpt named by the epoch and step it holds and put
    after the checkpoints up to that step. When an epoch checkpoint holds the same weights (the same step,
    and the same kind of weights for `use_ema`), best.ckpt names it as its twin."""
    paths = list_checkpoints(folder)
    targets = [Target(p, os.path.basename(p)) for p in paths if os.path.basename(p) != BEST_NAME]
    best = os.path.join(folder, BEST_NAME)
    if best not in paths:
        return targets
    meta = _step_record(best)
    if meta is None:
        return targets + [Target(best, BEST_NAME)]
    step, position, twin = meta["global_step"], 0, None
    for index, target in enumerate(targets):
        record = _step_record(target.path)
        if record is None or record["global_step"] > step:
            continue
        position = index + 1
        if (record["global_step"] == step and record.get("resumable") and not record.get("step_in_epoch")
                and weights_kind(record, use_ema) == weights_kind(meta, use_ema)):
            twin = target.path
    name = f"{BEST_NAME} (epoch {meta.get('epoch')}, step {step})"
    return targets[:position] + [Target(best, name, twin)] + targets[position:]


class CheckpointEvaluator:
    """Evaluates checkpoints of the configured network on the configured test set."""

    def __init__(self, cfg: Config, placement: Placement):
        self.cfg = cfg
        self.placement = placement
        self._net = None  # the trained network, which checkpoints are loaded into
        self._predict = None  # its inference form (BatchNorm folded), run in bounded calls

    def _dataset(self, batch_size: int, image_size: int | None = None):
        cfg = self.cfg
        return create_dataset(cfg.data_path, "eval", batch_size, image_size or cfg.image_size,
                              eval_data_path=cfg.eval_data_path,
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

    def _check_settings(self, path: str, meta: dict | None) -> None:
        """Refuse a checkpoint whose sidecar names another network or input than the settings in use."""
        for key in NETWORK_KEYS:
            if meta and key in meta and meta[key] != getattr(self.cfg, key):
                raise UserError(f"{path} was trained with {key} {meta[key]!r}, but this evaluation uses "
                                f"{key} {getattr(self.cfg, key)!r} (another run's checkpoint?); evaluate it on its own")

    def load(self, path: str) -> tuple[Predictor, dict | None]:
        """The inference form of the network with the weights of the checkpoint at `path`, and its sidecar."""
        if self._net is None:
            self._build()
        meta, _, _ = load_weights(self._net, path, use_ema=self.cfg.use_ema)
        self._check_settings(path, meta)
        fold_batchnorm(self._net, self._predict.net)
        return self._predict, meta

    def evaluate_checkpoint(self, path: str, dataset) -> tuple[EvalResult, str]:
        """(metrics, "EMA" or "trained": the weights that were evaluated)."""
        predict, meta = self.load(path)
        return evaluate(predict, dataset), weights_kind(meta, self.cfg.use_ema)

    def evaluate_mindir(self, path: str) -> EvalResult:
        if self.cfg.use_ema:
            raise UserError(f"--use_ema does not apply to {path}: a MINDIR holds the weights it was exported with "
                            "(export.py --use_ema true exports the EMA)")
        batch, image_size = mindir_image_input(path)  # the MINDIR's own size (follow_run took it for the config)
        graph = ms.nn.GraphCell(ms.load(path))
        return evaluate(lambda images: graph(ms.Tensor(images)).asnumpy(), self._dataset(batch, image_size),
                        fixed_batch=batch)

    def run(self, targets: list[Target], stop_on_error: bool) -> list[Outcome]:
        outcomes = []
        evaluated = set()
        dataset = None
        for target in targets:
            path, name, weights = target.path, target.name, "exported"
            if target.same_as in evaluated:
                print(f"{name}: the weights of {os.path.basename(target.same_as)}, not evaluated again", flush=True)
                outcomes.append(Outcome(path, name=name, same_as=target.same_as))
                continue
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
                outcomes.append(Outcome(path, error=str(err), name=name))
                continue
            evaluated.add(path)
            print(f"{name}: top1 {result.top1:.2%} | top5 {result.top5:.2%} | "
                  f"loss {result.loss:.4f} | {result.images} images | {weights} weights", flush=True)
            print(original_result_line(path, result), flush=True)
            outcomes.append(Outcome(path, result, weights=weights, name=name))
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
    width = max(len("checkpoint"), *(len(o.name) for o in outcomes))
    print(f"\n{'checkpoint':<{width}}  {'top1':>7}  {'top5':>7}  {'loss':>7}")
    for o in outcomes:
        name = o.name
        if o.same_as:
            print(f"{name:<{width}}  = {os.path.basename(o.same_as)}")
        elif o.result is None:
            print(f"{name:<{width}}  FAILED (see above)")
        else:
            print(f"{name:<{width}}  {o.result.top1:7.2%}  {o.result.top5:7.2%}  {o.result.loss:7.4f}")
    best = best_outcome(outcomes)
    if best is not None:
        print(f"best: {best.name} with top1 {best.result.top1:.2%}", flush=True)


def write_results(path: str, outcomes: list[Outcome]) -> None:
    """JSON with each checkpoint's metrics and per-image top-1 predictions (dataset order)."""
    best = best_outcome(outcomes)
    data = {
        "results": [{"checkpoint": os.path.abspath(o.path), "weights": o.weights, **o.result.to_dict()}
                    for o in outcomes if o.result is not None],
        "failed": [{"checkpoint": os.path.abspath(o.path), "error": o.error} for o in outcomes if o.error],
        "best": None if best is None else {"checkpoint": os.path.abspath(best.path), "top1": best.result.top1},
    }
    write_result_json(path, data)


def write_result_json(path: str, data: dict) -> None:
    """`--result_json`: written atomically, its folder created; a failure is a one-line error."""
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
    targets = find_targets(cfg.checkpoint_path, cfg.use_ema)
    follow_run(cfg, cfg.checkpoint_path)
    is_folder = os.path.isdir(cfg.checkpoint_path)
    outcomes = CheckpointEvaluator(cfg, placement).run(targets, stop_on_error=not is_folder)
    if is_folder:
        print_table(outcomes)
    best = best_outcome(outcomes)
    if best is not None:
        print(f"\nper-class accuracy of {best.name}:\n{per_class_table(best.result.confusion)}",
              flush=True)
    if cfg.result_json:
        write_results(cfg.result_json, outcomes)
        print(f"results written to {cfg.result_json}", flush=True)
    failed = [o for o in outcomes if o.error]
    if failed:
        tried = [o for o in outcomes if not o.same_as]
        print(f"error: {len(failed)} of {len(tried)} checkpoints could not be evaluated: "
              + ", ".join(o.name for o in failed), flush=True)
        return 1
    return 0
