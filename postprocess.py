"""Top-1 and top-5 accuracy of the 310 app's results over the real (unpadded) images.

    python postprocess.py --result_path result_Files --label_path preprocess_Result/labels.npy

Reads preprocess.py's meta.json next to the labels (batch size, image count, class names, file
names), so nothing is hard-coded. Each input `images/batch_00000.bin` has its result in
`RESULT/batch_00000_0.bin` (float32 logits, batch x classes). The accuracy line is printed and
written to `acc.log` next to the result folder; the per-class table is printed, and the metrics with
the `confusion_matrix` (rows = true class) go to `acc.json` there, or to `--result_json` when given.
"""
import json
import os
import sys

import numpy as np

from src.evaluation.metrics import confusion_matrix, top_k_hits
from src.evaluation.per_class import per_class_table
from src.utils.atomic_file import write_atomic, write_json_atomic
from src.utils.config import load_config
from src.utils.errors import UserError, run_cli

META_FILE = "meta.json"


def read_meta(label_path: str) -> dict:
    """preprocess.py's meta.json, which lies next to `label_path`."""
    meta_path = os.path.join(os.path.dirname(os.path.abspath(label_path)), META_FILE)
    try:
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except FileNotFoundError as err:
        raise UserError(f"{meta_path} does not exist; run preprocess.py and pass its labels.npy as --label_path "
                        "(or its output folder as --label_dir)") from err
    except (OSError, ValueError) as err:
        raise UserError(f"{meta_path} cannot be read ({err}); run preprocess.py again") from err
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path} must hold a JSON object, not {type(meta).__name__}; run preprocess.py again")
    expected = {"batch_size": int, "image_count": int, "class_names": list, "files": list}
    missing = [key for key in expected if key not in meta]
    if missing:
        raise UserError(f"{meta_path} lacks {', '.join(sorted(missing))}; run preprocess.py again")
    for key, kind in expected.items():
        value = meta[key]
        bad = (not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 1)
               or (kind is list and not all(isinstance(item, str) for item in value)))
        if bad:
            wanted = "a positive integer" if kind is int else "a list of names"
            raise UserError(f"{meta_path}: {key} is {value!r}, not {wanted}; run preprocess.py again")
    return meta


def read_labels(label_path: str, image_count: int) -> np.ndarray:
    try:
        labels = np.load(label_path)
    except (OSError, ValueError) as err:
        raise UserError(f"labels {label_path} cannot be read ({err}); run preprocess.py again") from err
    if labels.shape != (image_count,):
        raise UserError(f"labels {label_path} hold {labels.shape} values, meta.json says {image_count} images; "
                        "run preprocess.py again")
    return labels


def read_logits(result_path: str, meta: dict) -> np.ndarray:
    """The logits of every real image, in dataset order, shape (image_count, classes)."""
    batch_size, classes = meta["batch_size"], len(meta["class_names"])
    expected_bytes = batch_size * classes * 4
    batches = []
    for name in meta["files"]:
        path = os.path.join(result_path, f"{os.path.splitext(name)[0]}_0.bin")
        if not os.path.isfile(path):
            raise UserError(f"result file {path} is missing; run the 310 app on every file of preprocess.py")
        size = os.path.getsize(path)
        if size != expected_bytes:
            raise UserError(f"result file {path} has {size} bytes, expected {expected_bytes} (float32 logits of "
                            f"{batch_size} images x {classes} classes); it is truncated or from another model")
        batches.append(np.fromfile(path, dtype=np.float32).reshape(batch_size, classes))
    return np.concatenate(batches)[:meta["image_count"]]


def result_record(logits: np.ndarray, labels: np.ndarray) -> dict:
    """The metrics eval.py writes to --result_json for one checkpoint, for the offline results."""
    predicted, hit1, hit5 = top_k_hits(logits, labels)
    return {"top1": float(hit1.mean()), "top5": float(hit5.mean()), "images": len(labels),
            "predictions": [int(p) for p in predicted],
            "confusion_matrix": confusion_matrix(labels, predicted, logits.shape[1]).tolist()}


def accuracy_line(logits: np.ndarray, labels: np.ndarray) -> str:
    """"top-1 accuracy: ..., top-5 accuracy: ..." with the counts (top-k is capped at the class count)."""
    k = min(5, logits.shape[1])
    _, hit1, hit5 = top_k_hits(logits, labels, k)
    top1, top5, count = int(hit1.sum()), int(hit5.sum()), len(labels)
    return (f"top-1 accuracy: {top1 / count:.4f} ({top1}/{count}), "
            f"top-{k} accuracy: {top5 / count:.4f} ({top5}/{count})")


def main(argv: list[str] | None = None) -> int:
    cfg = load_config(argv, description=__doc__, script="postprocess")
    if not os.path.isdir(cfg.result_path):
        raise UserError(f"result folder {cfg.result_path} does not exist; pass the 310 app's --result_path")
    meta = read_meta(cfg.label_path)
    labels = read_labels(cfg.label_path, meta["image_count"])
    logits = read_logits(cfg.result_path, meta)
    line = accuracy_line(logits, labels)
    print(line)
    folder = os.path.dirname(os.path.abspath(cfg.result_path))
    write_atomic(os.path.join(folder, "acc.log"), line + "\n")
    record = result_record(logits, labels)
    print(per_class_table(record["confusion_matrix"], list(meta["class_names"])))
    write_json_atomic(cfg.result_json or os.path.join(folder, "acc.json"),
                      {**record, "class_names": meta["class_names"], "result_path": os.path.abspath(cfg.result_path)})
    return 0


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
