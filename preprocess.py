"""Write the CIFAR-10 eval set as input files for the 310 app (ascend310_infer).

    python preprocess.py --data_path DIR --output_path OUT [--batch_size N] [--mindir_path M | --checkpoint_path RUN]

The images go through eval.py's pipeline (`src.data.pipeline.create_dataset`, split "eval"), so
the app sees exactly eval.py's inputs. OUT receives:
  images/batch_00000.bin ...  float32 NCHW batches of N images; the last one padded with zeros
  labels.npy                  int32 labels of the real images, in dataset order
  meta.json                   batch size, input shape, image count, class names, file names
With --mindir_path, the batch size, image size and class count are read from that MINDIR, so that
the files always fit it; with --checkpoint_path (a run folder or a checkpoint in one), the image size
and class count are the run's (src/utils/run_settings.py). A flag that contradicts them is an error.
"""
import io
import json
import os
import sys

import numpy as np

from src.utils.device import set_up_device  # noqa: F401  (first: it quiets MindSpore's log before MindSpore loads)
from src.data.cifar10_files import CLASS_NAMES  # noqa: E402
from src.data.pipeline import create_dataset  # noqa: E402
from src.utils.atomic_file import write_atomic  # noqa: E402
from src.utils.config import load_config  # noqa: E402
from src.utils.errors import UserError, run_cli  # noqa: E402
from src.utils.run_settings import follow_run  # noqa: E402

IMAGES_DIR = "images"
LABELS_FILE = "labels.npy"
META_FILE = "meta.json"


def input_geometry(cfg) -> tuple[int, int]:
    """(batch size, image size): the MINDIR's or the run's (`follow_run`), else the config's."""
    if cfg.mindir_path:
        follow_run(cfg, cfg.mindir_path, ("class_num", "image_size", "export_batch_size"))
    else:
        follow_run(cfg, cfg.checkpoint_path, ("class_num", "image_size"))
    if cfg.export_batch_size < 1 or cfg.image_size < 1:
        raise UserError(f"--batch_size ({cfg.export_batch_size}) and --image_size ({cfg.image_size}) "
                        "must be positive")
    return cfg.export_batch_size, cfg.image_size


def main(argv: list[str] | None = None) -> int:
    cfg = load_config(argv, description=__doc__,
                      flag_aliases={"batch_size": "export_batch_size", "output_path": "preprocess_output_path"},
                      script="preprocess")
    batch_size, image_size = input_geometry(cfg)
    dataset = create_dataset(cfg.data_path, "eval", batch_size, image_size, eval_data_path=cfg.eval_data_path,
                             num_parallel_workers=cfg.num_parallel_workers, class_num=cfg.class_num)
    images_dir = os.path.join(cfg.preprocess_output_path, IMAGES_DIR)
    for folder in (cfg.preprocess_output_path, images_dir):
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UserError(f"--output_path: {folder} is a file, not a folder; pass a folder "
                            "(it is created if missing)")
    os.makedirs(images_dir, exist_ok=True)
    for stale in (name for name in os.listdir(images_dir) if name.endswith(".bin")):
        os.remove(os.path.join(images_dir, stale))  # a file of an earlier run would be inferred too
    meta_path = os.path.join(cfg.preprocess_output_path, META_FILE)
    if os.path.exists(meta_path):
        os.remove(meta_path)  # written last: its presence means the folder is complete

    files, labels = [], []
    for index, (images, batch_labels) in enumerate(dataset.create_tuple_iterator(output_numpy=True)):
        padded = np.zeros((batch_size, *images.shape[1:]), dtype=np.float32)
        padded[:len(images)] = images
        name = f"batch_{index:05d}.bin"
        write_atomic(os.path.join(images_dir, name), padded.tobytes())
        files.append(name)
        labels.append(batch_labels.astype(np.int32))
    labels = np.concatenate(labels)
    buffer = io.BytesIO()
    np.save(buffer, labels)
    write_atomic(os.path.join(cfg.preprocess_output_path, LABELS_FILE), buffer.getvalue())
    meta = {"batch_size": batch_size, "input_shape": [batch_size, 3, image_size, image_size],
            "dtype": "float32", "layout": "NCHW", "image_count": int(len(labels)),
            "padded_images": len(files) * batch_size - int(len(labels)),
            "class_names": list(CLASS_NAMES[:cfg.class_num]), "files": files}
    write_atomic(meta_path, json.dumps(meta, indent=1).encode())
    print(f"wrote {len(labels)} images in {len(files)} batches of {batch_size} "
          f"({meta['padded_images']} padding) to {images_dir}; labels and meta in {cfg.preprocess_output_path}")
    return 0


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
