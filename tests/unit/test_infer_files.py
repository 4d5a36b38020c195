"""infer.py: PNG/JPEG files through evaluation's preprocessing, top-5 out, bad files named, the run's network."""
import json
import os
import shutil

import mindspore as ms
import numpy as np
import pytest
from PIL import Image

from infer import split_arguments
from src.data.cifar10_files import read_cifar10_bin, resolve_split_files
from src.data.pipeline import create_dataset
from src.evaluation.eval_checkpoints import CheckpointEvaluator
from src.evaluation.infer_files import infer, predict_files, resolve_weights, softmax
from src.utils.checkpoint_file import file_digest, sidecar_path
from src.utils.config import load_config
from src.utils.device import Placement
from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.infer import TINY_FLAGS, random_network

CPU = Placement("CPU")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A test set, its first 6 images as PNG files, and a checkpoint of a tiny network."""
    root = tmp_path_factory.mktemp("infer")
    data = write_cifar_layout(str(root / "data"), per_train_file=1, test_count=6)
    images, _ = read_cifar10_bin(resolve_split_files(data, "eval", None))
    folder = root / "images"
    folder.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index}.png")  # lossless: the same pixels as the test set
    checkpoint = str(root / "tiny.ckpt")
    ms.save_checkpoint(random_network("sknet_tiny", head_std=5.0), checkpoint)
    return data, str(folder), checkpoint


def config(checkpoint, *extra):
    return load_config([*TINY_FLAGS, "--checkpoint_path", checkpoint, *extra])


def test_probabilities_equal_evaluation_of_the_same_images(setup):
    data, folder, checkpoint = setup
    cfg = config(checkpoint, "--image_size", "48")  # evaluation resizes CIFAR's 32x32 images: so must infer
    predictions = predict_files(cfg, [folder], CPU)
    dataset = create_dataset(data, "eval", 6, 48, num_parallel_workers=1)
    images = next(dataset.create_tuple_iterator(output_numpy=True))[0]
    predict, _ = CheckpointEvaluator(cfg, CPU).load(checkpoint)
    expected = softmax(predict(images).astype(np.float64))
    assert np.ptp(expected.max(axis=1)) > 1e-3, expected  # the images give different probabilities
    for prediction, row in zip(predictions, expected):
        assert len(prediction.top) == 5
        names = [name for name, _ in prediction.top]
        assert [prob for _, prob in prediction.top] == pytest.approx(sorted(row, reverse=True)[:5], abs=1e-5)
        assert prediction.top[0][1] >= prediction.top[-1][1] and names[0] != names[1]


def test_bad_files_are_one_line_errors_naming_them_and_the_rest_is_classified(setup, tmp_path, capsys):
    _, folder, checkpoint = setup
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    result = tmp_path / "out" / "top5.json"
    code = infer(config(checkpoint, "--result_json", str(result)),
                 [os.path.join(folder, "0.png"), str(broken), str(tmp_path / "missing.png")], CPU)
    out = capsys.readouterr().out
    assert code == 1
    assert f"error: {broken} is not a readable PNG/JPEG image" in out and f"{tmp_path / 'missing.png'} does not exist" in out
    written = json.loads(result.read_text())
    assert [p["image"] for p in written["predictions"]] == [os.path.join(folder, "0.png")]
    assert len(written["predictions"][0]["top5"]) == 5 and len(written["failed"]) == 2


def test_the_network_follows_the_run_and_a_folder_means_its_best_checkpoint(setup, tmp_path):
    _, folder, checkpoint = setup
    run = tmp_path / "run"
    run.mkdir()
    for name in ("tiny-1_2.ckpt", "best.ckpt"):
        shutil.copy(checkpoint, run / name)
        with open(sidecar_path(str(run / name)), "w", encoding="utf-8") as handle:
            json.dump({"size": os.path.getsize(checkpoint), "sha256": file_digest(checkpoint)[1], "arch": "sknet_tiny",
                       "stem_type": "cifar", "image_size": 40, "class_num": 10}, handle)
    assert resolve_weights(str(run)) == str(run / "best.ckpt")
    cfg = load_config(["--device_target", "CPU", "--checkpoint_path", str(run)])  # sknet50 at 224 by default
    predictions = predict_files(cfg, [folder], CPU)
    assert (cfg.arch, cfg.stem_type, cfg.image_size) == ("sknet_tiny", "cifar", 40)
    assert all(len(p.top) == 5 for p in predictions)


def test_flags_and_image_paths_are_told_apart():
    assert split_arguments(["--checkpoint_path", "run", "a.png", "--result_json=r.json", "dir", "--image_size", "32"]) \
        == (["--checkpoint_path", "run", "--result_json=r.json", "--image_size", "32"], ["a.png", "dir"])


@pytest.mark.slow
def test_a_mindir_gives_the_checkpoints_probabilities(setup, tmp_path):
    _, folder, checkpoint = setup
    net = random_network("sknet_tiny", head_std=5.0)
    net.set_train(False)
    mindir = str(tmp_path / "tiny")
    ms.export(net, ms.Tensor(np.zeros((4, 3, 32, 32), np.float32)), file_name=mindir, file_format="MINDIR")
    from_mindir = predict_files(config(mindir + ".mindir"), [folder], CPU)  # 6 images: one padded batch of 4
    from_checkpoint = predict_files(config(checkpoint), [folder], CPU)
    for a, b in zip(from_mindir, from_checkpoint):
        assert [name for name, _ in a.top] == [name for name, _ in b.top]
        assert [p for _, p in a.top] == pytest.approx([p for _, p in b.top], abs=1e-5)
