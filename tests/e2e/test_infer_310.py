"""The C++ 310 app on the real MindSpore Lite C++ library, and scripts/run_infer_310.sh end to end.

CI has no Ascend 310 and the registry has one Lite package, mindspore-lite 2.0.0, so the app is built
with `ascend310_infer/build.sh cpu` on Lite 2.0.0's C++ runtime from that wheel (fetched once into
~/.cache/sknet50 by fetch_lite.sh, 168 MB), and runs MINDIRs rewritten by tools/mindir_to_lite20.py
into the dialect Lite 2.0.0 reads. Outputs are compared with MindSpore's own run of the exported file.
"""
import json
import os
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

import export
import preprocess
from src.data.cifar10_files import EVAL_FILES, write_cifar10_bin
from tests.helpers import REPO_ROOT
from tests.helpers.cifar_data import write_cifar_layout
from tests.helpers.infer import TINY_FLAGS, random_network, save_tiny_checkpoint

REPO = REPO_ROOT
APP = os.path.join(REPO, "ascend310_infer", "out", "cpu", "main")
SCRIPT = os.path.join(REPO, "scripts", "run_infer_310.sh")
ENV = {**os.environ, "GLOG_v": "3", "PYTHON": sys.executable}
ENV.pop("MINDSPORE_LITE_HOME", None)  # the CPU tests are about CI's Lite 2.0.0 from the wheel
# Lite 2.0.0 and MindSpore 2.10 run the same float32 graph with different kernels.
LOGIT_TOLERANCE = 1e-5
# Every test here starts the app, the launcher or a Python entry point.
pytestmark = pytest.mark.slow


def run(command: list[str], cwd: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=900)


def lite20(mindir: str) -> str:
    """`mindir` rewritten into Lite 2.0.0's dialect, next to it."""
    target = mindir[:-len(".mindir")] + "_lite20.mindir"
    result = run([sys.executable, "-m", "tools.mindir_to_lite20", mindir, target], cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    return target


def mindspore_logits(mindir: str, images: np.ndarray) -> np.ndarray:
    return nn.GraphCell(ms.load(mindir))(ms.Tensor(images)).asnumpy()


@pytest.fixture(scope="session")
def app() -> str:
    build = run(["bash", os.path.join(REPO, "ascend310_infer", "build.sh"), "cpu"])
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return APP


@pytest.fixture(scope="module")
def tiny_mindir(tmp_path_factory) -> tuple[str, str, str]:
    """(MINDIR of a tiny network with batch 4, the same in Lite 2.0's dialect, a folder of its inputs)."""
    root = tmp_path_factory.mktemp("app")
    ckpt = save_tiny_checkpoint(str(root / "tiny.ckpt"))
    export.main(["--ckpt_file", ckpt, "--file_name", str(root / "tiny"), "--batch_size", "4", *TINY_FLAGS])
    data = write_cifar_layout(str(root / "data"), per_train_file=1, test_count=6)
    preprocess.main(["--data_path", data, "--output_path", str(root / "pre"),
                     "--mindir_path", str(root / "tiny.mindir")])
    return str(root / "tiny.mindir"), lite20(str(root / "tiny.mindir")), str(root / "pre" / "images")


def run_app(app: str, mindir: str, inputs: str, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return run([app, "--mindir_path", mindir, "--input0_path", inputs, "--device_type", "CPU",
                "--result_path", str(tmp_path / "result_Files"), "--time_path", str(tmp_path / "time_Result"),
                *extra])


def test_app_links_mindspore_lite_and_no_python(app):
    needed = run(["readelf", "-d", app]).stdout
    assert "libmindspore-extendrt_python.so" in needed  # Lite 2.0.0's C++ API library in the wheel
    assert "libpython" not in needed and "libmindspore.so" not in needed
    loaded = run(["ldd", app]).stdout
    assert "not found" not in loaded and "libpython" not in loaded


def test_app_matches_mindspore_and_writes_the_latency(app, tiny_mindir, tmp_path):
    mindir, mindir_lite20, inputs = tiny_mindir
    result = run_app(app, mindir_lite20, inputs, tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "result_Files")) == ["batch_00000_0.bin", "batch_00001_0.bin"]
    for name in ("batch_00000", "batch_00001"):
        images = np.fromfile(os.path.join(inputs, f"{name}.bin"), np.float32).reshape(4, 3, 32, 32)
        logits = np.fromfile(tmp_path / "result_Files" / f"{name}_0.bin", np.float32).reshape(4, 10)
        np.testing.assert_allclose(logits, mindspore_logits(mindir, images), rtol=0, atol=LOGIT_TOLERANCE)
    assert "mean latency" in result.stdout
    assert "average time" in (tmp_path / "time_Result" / "test_perform_static.txt").read_text()


# Where a Lite release (mindspore-lite-<version>-linux-x64.tar.gz) keeps the libraries that CI's wheel has in lib/.
RELEASE_FOLDERS = {"libmindspore_glog.so.0": "runtime/third_party/glog", "libdnnl.so.2": "runtime/third_party/dnnl",
                   "libmindspore_converter.so": "tools/converter/lib", "libmslite_converter_plugin.so": "tools/converter/lib",
                   "libopencv_core.so.4.5": "tools/converter/lib", "libopencv_imgcodecs.so.4.5": "tools/converter/lib",
                   "libopencv_imgproc.so.4.5": "tools/converter/lib"}


def lite_release_layout(root) -> str:
    """CI's Lite arranged as a release tarball unpacks (symlinks into the cache): runtime/include, runtime/lib,
    runtime/third_party/{glog,dnnl}, tools/converter/lib."""
    cache = run(["bash", os.path.join(REPO, "ascend310_infer", "fetch_lite.sh")]).stdout.strip()
    (root / "runtime").mkdir(parents=True)
    os.symlink(os.path.join(cache, "include"), root / "runtime" / "include")
    for name in os.listdir(os.path.join(cache, "lib")):
        folder = root / RELEASE_FOLDERS.get(name, "runtime/lib")
        folder.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.join(cache, "lib", name), folder / name)
    return str(root)


def test_the_app_finds_every_library_of_a_lite_release_layout(app, tiny_mindir, tmp_path):
    home = lite_release_layout(tmp_path / "mindspore-lite-2.0.0-linux-x64")
    build = tmp_path / "build"
    for command in (["cmake", "-S", os.path.join(REPO, "ascend310_infer"), "-B", str(build),
                     f"-DMINDSPORE_LITE_HOME={home}"], ["cmake", "--build", str(build)]):
        result = run(command)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    env = {key: value for key, value in ENV.items() if key != "LD_LIBRARY_PATH"}  # RPATH alone
    assert "not found" not in run(["ldd", str(build / "main")], env=env).stdout
    mindir, mindir_lite20, inputs = tiny_mindir
    result = run([str(build / "main"), "--mindir_path", mindir_lite20, "--input0_path", inputs, "--device_type", "CPU",
                  "--result_path", str(tmp_path / "result_Files"), "--time_path", str(tmp_path / "time_Result")],
                 env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    images = np.fromfile(os.path.join(inputs, "batch_00000.bin"), np.float32).reshape(4, 3, 32, 32)
    logits = np.fromfile(tmp_path / "result_Files" / "batch_00000_0.bin", np.float32).reshape(4, 10)
    np.testing.assert_allclose(logits, mindspore_logits(mindir, images), rtol=0, atol=LOGIT_TOLERANCE)


def test_app_fails_on_a_missing_mindir(app, tiny_mindir, tmp_path):
    result = run_app(app, str(tmp_path / "missing.mindir"), tiny_mindir[2], tmp_path)
    assert result.returncode == 1
    assert "error: cannot build MINDIR" in result.stderr and "missing.mindir" in result.stderr


def test_app_reports_lites_refusal_of_a_mindir(app, tiny_mindir, tmp_path):
    # The 2.10 file as exported: Lite 2.0.0's Build fails, and the app must say so, not go on.
    result = run_app(app, tiny_mindir[0], tiny_mindir[2], tmp_path)
    assert result.returncode == 1
    assert f"error: cannot build MINDIR {tiny_mindir[0]} for CPU" in result.stderr
    assert not (tmp_path / "result_Files").exists()


def test_app_asks_lite_for_the_ascend_device(app, tiny_mindir, tmp_path):
    # The wheel's Lite has no Ascend plugin: Lite's own refusal shows the Ascend device info reached it.
    result = run_app(app, *tiny_mindir[1:], tmp_path, "--device_type", "Ascend310", "--device_id", "3")
    assert result.returncode == 1
    assert "Init ascend failed" in result.stderr
    assert f"error: cannot build MINDIR {tiny_mindir[1]} for Ascend310" in result.stderr


def test_app_refuses_an_unknown_device_type(app, tiny_mindir, tmp_path):
    result = run_app(app, *tiny_mindir[1:], tmp_path, "--device_type", "GPU")
    assert result.returncode == 1 and "--device_type GPU is unknown" in result.stderr


def test_app_fails_on_an_empty_input_folder(app, tiny_mindir, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_app(app, tiny_mindir[1], str(tmp_path / "empty"), tmp_path)
    assert result.returncode == 1
    assert "holds no .bin files" in result.stderr


@pytest.mark.parametrize("batch", [3, 8])  # too small, and too large (copied past the input buffer if let through)
def test_app_fails_on_a_wrong_sized_input_before_inferring(app, tiny_mindir, tmp_path, batch):
    folder = tmp_path / "inputs"
    folder.mkdir()
    np.zeros((4, 3, 32, 32), np.float32).tofile(folder / "a.bin")
    np.zeros((batch, 3, 32, 32), np.float32).tofile(folder / "b.bin")
    result = run_app(app, tiny_mindir[1], str(folder), tmp_path)
    assert result.returncode == 1
    assert f"b.bin has {batch * 12288} bytes" in result.stderr and "takes 49152" in result.stderr
    assert not (tmp_path / "result_Files").exists()


@pytest.mark.parametrize("args, match", [
    (["m.mindir", "imagenet", "d", "y"], "DATASET_NAME 'imagenet' is not supported"),
    (["m.mindir", "cifar10", "d"], "expected 4 or 5 arguments"),
    (["missing.mindir", "cifar10", "d", "y"], "is not a file"),
])
def test_run_infer_310_refuses_bad_arguments(tmp_path, args, match):
    result = run(["bash", SCRIPT, *args], cwd=str(tmp_path))
    assert result.returncode == 1 and match in result.stderr


def test_run_infer_310_on_ascend_needs_mindspore_lite_home_before_anything(tiny_mindir, tmp_path):
    result = run(["bash", SCRIPT, tiny_mindir[0], "cifar10", "no_data", "y", "0"], cwd=str(tmp_path),
                 env={**ENV, "OUTPUT_DIR": "out"})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "MINDSPORE_LITE_HOME is not set" in result.stderr
    assert not (tmp_path / "out").exists()


def test_run_infer_310_stops_at_the_failing_stage_and_shows_its_log(tiny_mindir, tmp_path):
    (tmp_path / "no_data").mkdir()
    result = run(["bash", SCRIPT, tiny_mindir[0], "cifar10", "no_data", "y"],
                 cwd=str(tmp_path), env={**ENV, "DEVICE_TARGET": "CPU", "OUTPUT_DIR": "out"})
    assert result.returncode == 1
    assert "stage 'preprocess' failed" in result.stderr and "missing test_batch.bin" in result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["preprocess.log"]  # nothing ran after it


def app_logits(result_dir: str, meta: dict) -> np.ndarray:
    """The app's logits of every real image, in dataset order."""
    classes = len(meta["class_names"])
    logits = np.concatenate([np.fromfile(os.path.join(result_dir, f"{name[:-4]}_0.bin"), np.float32)
                             .reshape(meta["batch_size"], classes) for name in meta["files"]])
    return logits[:meta["image_count"]]


def infer_and_compare_with_eval(tmp_path, mindir: str, data: str, eval_args: list[str], min_classes: int) -> None:
    """run_infer_310.sh on the CPU (from another folder, relative paths) equals eval.py image for image."""
    infer = run(["bash", SCRIPT, os.path.relpath(mindir, tmp_path), "cifar10", os.path.relpath(data, tmp_path), "y"],
                cwd=str(tmp_path), env={**ENV, "DEVICE_TARGET": "CPU", "OUTPUT_DIR": "infer"})
    assert infer.returncode == 0, infer.stdout[-2000:] + infer.stderr[-2000:]
    evaluation = run([sys.executable, os.path.join(REPO, "eval.py"), *eval_args, "--data_path", data,
                      "--result_json", str(tmp_path / "eval.json")], cwd=str(tmp_path))
    assert evaluation.returncode == 0, evaluation.stdout[-2000:] + evaluation.stderr[-2000:]

    reference = json.loads((tmp_path / "eval.json").read_text())["results"][0]
    pre = tmp_path / "infer" / "preprocess_Result"
    meta = json.loads((pre / "meta.json").read_text())
    logits = app_logits(str(tmp_path / "infer" / "result_Files"), meta)
    count = reference["images"]
    assert len(logits) == count == meta["image_count"]
    assert len(set(reference["predictions"])) >= min_classes, "too few classes predicted to compare"
    assert [int(p) for p in logits.argmax(axis=1)] == reference["predictions"]
    top1, top5 = round(reference["top1"] * count), round(reference["top5"] * count)
    acc = (tmp_path / "infer" / "acc.log").read_text()
    assert acc == (f"top-1 accuracy: {top1 / count:.4f} ({top1}/{count}), "
                   f"top-5 accuracy: {top5 / count:.4f} ({top5}/{count})\n")
    assert acc.strip() in infer.stdout
    images = np.concatenate([np.fromfile(pre / "images" / name, np.float32).reshape(meta["input_shape"])
                             for name in meta["files"]])
    expected = np.concatenate([mindspore_logits(mindir, batch)
                               for batch in np.split(images, len(meta["files"]))])[:count]
    np.testing.assert_allclose(logits, expected, rtol=0, atol=LOGIT_TOLERANCE)


def test_run_infer_310_predicts_what_eval_py_predicts(app, tmp_path):
    data = write_cifar_layout(str(tmp_path / "data"), per_train_file=32, test_count=27)
    # 30 steps: enough for varied predictions (measured: 70% top-1), so that equal predictions mean something.
    train = run([sys.executable, os.path.join(REPO, "train.py"), *TINY_FLAGS, "--data_path", data,
                 "--output_path", str(tmp_path / "run"), "--epoch_size", "3", "--batch_size", "16",
                 "--warmup_epochs", "0", "--eval_interval", "0", "--log_interval", "0"], cwd=str(tmp_path))
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    ckpt = str(tmp_path / "run" / "sknet_tiny-3_10.ckpt")
    # Batch 8 over 27 images: the last batch carries 5 padded images.
    export.main(["--ckpt_file", ckpt, "--file_name", str(tmp_path / "tiny"), "--batch_size", "8", *TINY_FLAGS])
    infer_and_compare_with_eval(tmp_path, str(tmp_path / "tiny.mindir"), data,
                                [*TINY_FLAGS, "--checkpoint_path", ckpt], min_classes=4)


@pytest.mark.parametrize("arch, stem_type, image_size", [("sknet50", "cifar", 32), ("sknet_tiny", "imagenet", 64)])
def test_run_infer_310_runs_an_untrained_network_like_eval_py(app, tmp_path, arch, stem_type, image_size):
    """The full SKNet-50 (CIFAR stem), and the ImageNet stem that export.py writes by default (its max-pool as
    Pad + MaxPool, which Lite 2.0 has), untrained: eval.py on the same MINDIR is the reference."""
    # Images of one random colour each, plus noise: an untrained network's prediction follows the colour.
    rng = np.random.default_rng(0)
    images = np.clip(rng.integers(0, 256, (16, 1, 1, 3)) + rng.integers(-30, 30, (16, 32, 32, 3)), 0, 255)
    data = str(tmp_path / "data")
    os.makedirs(data)
    write_cifar10_bin(os.path.join(data, EVAL_FILES[0]), images.astype(np.uint8), np.arange(16, dtype=np.uint8) % 10)
    # A small classifier scale keeps the logits near 1, where float32 kernels differ least.
    net = random_network(arch, head_std=0.05, stem_type=stem_type)
    net.set_train(False)
    # ms.export alone (one graph compilation); export.py's own checks are covered by test_export.py.
    mindir = str(tmp_path / arch)
    ms.export(net, ms.Tensor(np.zeros((8, 3, image_size, image_size), np.float32)), file_name=mindir,
              file_format="MINDIR")
    infer_and_compare_with_eval(tmp_path, mindir + ".mindir", data,
                                ["--arch", arch, "--stem_type", stem_type, "--image_size", str(image_size),
                                 "--device_target", "CPU", "--checkpoint_path", mindir + ".mindir"],
                                min_classes=2)


def fetch_lite(cache, **env: str) -> subprocess.CompletedProcess:
    return run(["bash", os.path.join(REPO, "ascend310_infer", "fetch_lite.sh")],
               env={**ENV, "SKNET50_CACHE": str(cache), **env})


def test_fetch_lite_refuses_a_damaged_wheel_in_one_line(tmp_path):
    wheel = tmp_path / "mindspore_lite-2.0.0-cp37-cp37m-manylinux1_x86_64.whl"
    wheel.write_bytes(b"PK\x03\x04 not the wheel")
    result = fetch_lite(tmp_path / "cache", MINDSPORE_LITE_WHEEL=str(wheel))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "SHA-256" in result.stderr and "199cd0605cc985b8" in result.stderr
    assert os.listdir(tmp_path / "cache" / "mindspore_lite") == []  # no half cache left behind


def test_fetch_lite_refuses_a_missing_wheel_in_one_line(tmp_path):
    result = fetch_lite(tmp_path / "cache", MINDSPORE_LITE_WHEEL=str(tmp_path / "missing.whl"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "MINDSPORE_LITE_WHEEL" in result.stderr and "is not a file" in result.stderr


def test_fetch_lite_fetches_a_damaged_cache_again(tmp_path):
    # A cache whose files no longer match its manifest (here: a library cut short) is not trusted.
    dest = tmp_path / "cache" / "mindspore_lite" / "2.0.0"
    (dest / "lib").mkdir(parents=True)
    (dest / "lib" / "libmindspore-extendrt_python.so").write_bytes(b"cut")
    (dest / ".manifest").write_text("142000000 lib/libmindspore-extendrt_python.so\n")
    result = fetch_lite(tmp_path / "cache", MINDSPORE_LITE_WHEEL=str(tmp_path / "missing.whl"))
    assert result.returncode == 1
    assert "is damaged; fetching it again" in result.stderr and "is not a file" in result.stderr


def test_build_on_ascend_needs_mindspore_lite_home(tmp_path):
    result = run(["bash", os.path.join(REPO, "ascend310_infer", "build.sh")])
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "MINDSPORE_LITE_HOME is not set" in result.stderr


SANITIZERS = "-fsanitize=address,undefined"
# Lite's own allocations outlive main (its static state), so leak reports would be about Lite, not the app.
SANITIZER_ENV = {**ENV, "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1",
                 "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


def test_the_app_built_with_address_and_undefined_behaviour_sanitizers_reads_and_writes_in_bounds(
        app, tiny_mindir, tmp_path):
    # The app alone is instrumented (Lite is a prebuilt library): every read and write of the app's own
    # code and of the libc calls it makes (memcpy into Lite's input buffer, the file reads) is checked.
    lite_home = run(["bash", os.path.join(REPO, "ascend310_infer", "fetch_lite.sh")]).stdout.strip()
    build = tmp_path / "build"
    configure = run(["cmake", "-S", os.path.join(REPO, "ascend310_infer"), "-B", str(build),
                     "-DCMAKE_BUILD_TYPE=Debug", f"-DMINDSPORE_LITE_HOME={lite_home}",
                     f"-DCMAKE_CXX_FLAGS={SANITIZERS} -fno-omit-frame-pointer -fno-sanitize-recover=all -g",
                     f"-DCMAKE_EXE_LINKER_FLAGS={SANITIZERS}"])
    assert configure.returncode == 0, configure.stdout[-2000:] + configure.stderr[-2000:]
    built = run(["cmake", "--build", str(build), "-j", "2"])
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    checked = str(build / "main")
    assert "__asan_init" in run(["nm", checked]).stdout

    def run_checked(inputs: str, out: str) -> subprocess.CompletedProcess:
        result = run([checked, "--mindir_path", tiny_mindir[1], "--input0_path", inputs, "--device_type", "CPU",
                      "--result_path", str(tmp_path / out / "result_Files"),
                      "--time_path", str(tmp_path / out / "time_Result")], env=SANITIZER_ENV)
        assert "Sanitizer" not in result.stderr and "runtime error" not in result.stderr, result.stderr[-4000:]
        return result

    good = run_checked(tiny_mindir[2], "good")
    assert good.returncode == 0, good.stderr[-3000:]
    images = np.fromfile(os.path.join(tiny_mindir[2], "batch_00000.bin"), np.float32).reshape(4, 3, 32, 32)
    logits = np.fromfile(tmp_path / "good" / "result_Files" / "batch_00000_0.bin", np.float32).reshape(4, 10)
    np.testing.assert_allclose(logits, mindspore_logits(tiny_mindir[0], images), rtol=0, atol=LOGIT_TOLERANCE)
    for batch in (3, 8):  # a short and a long file: refused before any copy
        folder = tmp_path / f"batch{batch}"
        folder.mkdir()
        np.zeros((batch, 3, 32, 32), np.float32).tofile(folder / "b.bin")
        bad = run_checked(str(folder), f"bad{batch}")
        assert bad.returncode == 1 and f"has {batch * 12288} bytes" in bad.stderr, bad.stderr[-3000:]
