"""The top-5 classes of PNG/JPEG files (infer.py): a run folder, a .ckpt or a .mindir; evaluation's preprocessing.

Each image is read as RGB, resized to image_size x image_size (bilinear, as evaluation resizes CIFAR's
32x32 images), scaled to [0, 1] and normalised with the CIFAR-10 mean and std. The network (arch, stem,
image size, classes) follows the run as in eval.py (`src.utils.run_settings.follow_run`); a run folder
means its best.ckpt, or its newest checkpoint without one.
"""
import os
from dataclasses import dataclass, field

import mindspore as ms
import numpy as np
from mindspore.dataset import vision
from PIL import Image, UnidentifiedImageError

from src.data.cifar10_files import CLASS_NAMES
from src.data.pipeline import normalise_ops
from src.evaluation.eval_checkpoints import CheckpointEvaluator, write_result_json
from src.training.checkpoint_manager import BEST_NAME
from src.utils.checkpoint_file import list_checkpoints
from src.utils.config import Config
from src.utils.device import Placement
from src.utils.errors import UserError
from src.utils.mindir import mindir_image_input
from src.utils.run_settings import follow_run

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TOP_K = 5


@dataclass
class Prediction:
    image: str
    top: list[tuple[str, float]] = field(default_factory=list)  # (class name, probability), best first
    error: str | None = None


def image_files(paths: list[str]) -> list[str]:
    """The files named on the command line; a folder gives its PNG/JPEG files in name order."""
    if not paths:
        raise UserError("name at least one image file or folder: python infer.py --checkpoint_path RUN IMAGE ...")
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_SUFFIXES))
            if not found:
                raise UserError(f"{path} holds no .png/.jpg/.jpeg files")
            files += [os.path.join(path, name) for name in found]
        else:
            files.append(path)
    return files


def read_image(path: str, image_size: int) -> np.ndarray:
    """CHW float32 of the file at `path`, preprocessed as evaluation; `UserError` naming the file if unreadable."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except FileNotFoundError as err:
        raise UserError(f"{path} does not exist") from err
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UserError(f"{path} is not a readable PNG/JPEG image ({err})") from err
    for op in [vision.Resize((image_size, image_size)), *normalise_ops(), vision.HWC2CHW()]:
        pixels = op(pixels)
    return pixels.astype(np.float32)


def resolve_weights(path: str | None) -> str:
    """The .ckpt or .mindir that --checkpoint_path names: itself, or a run folder's best (else newest) checkpoint."""
    if not path:
        raise UserError("pass --checkpoint_path: a run folder, a .ckpt file or a .mindir file")
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, BEST_NAME)):
            return os.path.join(path, BEST_NAME)
        found = list_checkpoints(path)
        if not found:
            raise UserError(f"{path} holds no .ckpt files; pass the folder train.py wrote (--output_path) or a file")
        return found[-1]
    if not os.path.isfile(path):
        raise UserError(f"--checkpoint_path {path} does not exist")
    if not path.endswith((".ckpt", ".mindir")):
        raise UserError(f"--checkpoint_path {path} is neither a .ckpt nor a .mindir file")
    return path


def classifier(cfg: Config, weights: str, placement: Placement):
    """(logits of a (N, 3, S, S) batch, image size S)."""
    if weights.endswith(".mindir"):
        batch, image_size = mindir_image_input(weights)
        graph = ms.nn.GraphCell(ms.load(weights))

        def run_fixed_batches(images: np.ndarray) -> np.ndarray:
            count = len(images)
            padded = np.concatenate([images, np.repeat(images[-1:], -count % batch, axis=0)])
            return np.concatenate([graph(ms.Tensor(padded[i:i + batch])).asnumpy()
                                   for i in range(0, len(padded), batch)])[:count]
        return run_fixed_batches, image_size
    predict, _ = CheckpointEvaluator(cfg, placement).load(weights)
    return predict, cfg.image_size


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def class_name(index: int, class_num: int) -> str:
    return CLASS_NAMES[index] if class_num == len(CLASS_NAMES) else f"class {index}"


def predict_files(cfg: Config, paths: list[str], placement: Placement) -> list[Prediction]:
    files = image_files(paths)
    weights = resolve_weights(cfg.checkpoint_path)
    follow_run(cfg, weights)
    predict, image_size = classifier(cfg, weights, placement)
    predictions, images = [], []
    for path in files:
        try:
            images.append(read_image(path, image_size))
            predictions.append(Prediction(path))
        except UserError as err:
            predictions.append(Prediction(path, error=str(err)))
    good = [p for p in predictions if p.error is None]
    if good:
        probabilities = softmax(predict(np.stack(images)).astype(np.float64))
        for prediction, row in zip(good, probabilities):
            best = np.argsort(-row, kind="stable")[:TOP_K]
            prediction.top = [(class_name(int(i), row.size), float(row[i])) for i in best]
    print(f"{len(good)} of {len(predictions)} images classified with {weights} "
          f"({cfg.arch}, {cfg.stem_type} stem, {image_size}px)", flush=True)
    return predictions


def print_predictions(predictions: list[Prediction]) -> None:
    width = max(len("image"), *(len(p.image) for p in predictions))
    print(f"{'image':<{width}}  top-{TOP_K} (probability)")
    for p in predictions:
        text = f"error: {p.error}" if p.error else "  ".join(f"{name} {prob:.3f}" for name, prob in p.top)
        print(f"{p.image:<{width}}  {text}", flush=True)


def write_predictions(path: str, predictions: list[Prediction]) -> None:
    data = {"predictions": [{"image": p.image, "top5": [{"class": n, "probability": q} for n, q in p.top]}
                            for p in predictions if p.error is None],
            "failed": [{"image": p.image, "error": p.error} for p in predictions if p.error]}
    write_result_json(path, data)


def infer(cfg: Config, paths: list[str], placement: Placement) -> int:
    """infer.py's job; the exit code is 1 when any file could not be read."""
    predictions = predict_files(cfg, paths, placement)
    print_predictions(predictions)
    if cfg.result_json:
        write_predictions(cfg.result_json, predictions)
        print(f"results written to {cfg.result_json}", flush=True)
    failed = [p for p in predictions if p.error]
    if failed:
        print(f"error: {len(failed)} of {len(predictions)} images could not be read: "
              + ", ".join(p.image for p in failed), flush=True)
        return 1
    return 0
