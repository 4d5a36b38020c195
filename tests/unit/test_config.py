import os

import pytest

from src.data.download import download_cifar10
from src.utils import config, device
from src.utils.config import load_config
from src.utils.errors import UserError
from src.utils.safe_text import redact_url


def test_defaults_reproduce_the_seed_recipe():
    cfg = load_config([])
    assert (cfg.batch_size, cfg.epoch_size, cfg.momentum, cfg.weight_decay) == (32, 90, 0.9, 1e-4)
    assert (cfg.lr_decay_mode, cfg.warmup_epochs, cfg.lr_init, cfg.lr_max, cfg.lr_end) == ("poly", 5, 0.01, 0.1, 1e-5)
    assert (cfg.loss_scale, cfg.image_size, cfg.class_num, cfg.stem_type) == (1024, 224, 10, "imagenet")
    assert cfg.label_smooth_factor == 0.1


def test_cli_overrides_with_types_and_seed_aliases():
    cfg = load_config(["--epoch_size", "3", "--lr_max", "0.5", "--data_url", "/d", "--run_distribute", "True",
                       "--pre_trained", "x.ckpt", "--device_target", "CPU", "--checkpoint_path", "out"])
    assert cfg.epoch_size == 3 and isinstance(cfg.epoch_size, int)
    assert cfg.lr_max == 0.5 and cfg.data_path == "/d" and cfg.run_distribute is True
    assert (cfg.pre_trained, cfg.device_target, cfg.checkpoint_path) == ("x.ckpt", "CPU", "out")


@pytest.mark.parametrize("text, value", [("False", False), ("false", False), ("0", False), ("no", False),
                                         ("True", True), ("1", True), ("yes", True)])
def test_booleans_parse_correctly(text, value):
    assert load_config(["--shuffle", text]).shuffle is value


def test_yaml_file_overrides_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epoch_size: 7\nshuffle: false\ndata_url: /x\n")
    cfg = load_config(["--config_path", str(path), "--batch_size", "4"])
    assert (cfg.epoch_size, cfg.shuffle, cfg.data_path, cfg.batch_size) == (7, False, "/x", 4)
    assert cfg.config_path == str(path)


@pytest.mark.parametrize("text, match", [
    ("epoch_sise: 7\n", "unknown key 'epoch_sise'"),
    ("epoch_size: 7\nbatch_size: [1\n", "line 3"),
    ("epoch_size: seven\n", "bad value for epoch_size"),
    ("shuffle: maybe\n", "bad value for shuffle"),
    ("- a\n- b\n", "must hold a mapping"),
    ("batch_size: null\n", "must not be null"),
    ("lr_max: .inf\n", "finite"),
    ("epoch_size: 1.0e+400\n", "bad value for epoch_size"),
])
def test_bad_yaml_is_a_one_line_error(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=match) as info:
        load_config(["--config_path", str(path)])
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("argv, match", [
    (["--epoch_sise", "3"], "unrecognized arguments"),
    (["--shuffle", "Flase"], "bad value for shuffle"),
    (["--batch_size", "2.5"], "bad value for batch_size"),
    (["--lr_max", "nan"], "finite"),
    (["--lr_max", "inf"], "finite"),
    (["--config_path", "/nonexistent.yaml"], "does not exist"),
])
def test_bad_cli_is_a_one_line_error(argv, match):
    with pytest.raises(UserError, match=match):
        load_config(argv)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(["--epoch_size", "3"])
    cfg.save(str(tmp_path / "config.yaml"))
    again = load_config(["--config_path", str(tmp_path / "config.yaml")])
    assert again.epoch_size == 3


def test_entry_point_flag_aliases_apply_to_the_command_line_only(tmp_path):
    aliases = {"batch_size": "export_batch_size"}
    cfg = load_config(["--batch_size", "8"], flag_aliases=aliases)
    assert (cfg.export_batch_size, cfg.batch_size) == (8, 32)
    assert load_config(["--export_batch_size", "4"], flag_aliases=aliases).export_batch_size == 4
    path = tmp_path / "c.yaml"
    path.write_text("batch_size: 16\n")  # in a file, a key keeps its one meaning
    cfg = load_config(["--config_path", str(path)], flag_aliases=aliases)
    assert (cfg.export_batch_size, cfg.batch_size) == (1, 16)


# ---- hostile config files ----

def test_a_config_file_above_the_size_limit_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("data_path: " + "x" * config.MAX_CONFIG_BYTES + "\n")
    with pytest.raises(UserError, match="larger than 1 MiB") as caught:
        load_config(["--config_path", str(path)])
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_a_yaml_alias_bomb_is_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\ndata_path: *a8\n")  # 9**9 values once expanded
    with pytest.raises(UserError, match="expands to more than 10000 values") as caught:
        load_config(["--config_path", str(path)])
    assert "\n" not in str(caught.value)


def test_a_self_referencing_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("data_path: &a [*a]\n")
    with pytest.raises(UserError, match="refers to itself"):
        load_config(["--config_path", str(path)])


def test_a_wrong_value_is_shown_cut_in_the_message(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text("data_path: [" + ", ".join(["abcdefgh"] * 2000) + "]\n")
    with pytest.raises(UserError, match="expected a string") as caught:
        load_config(["--config_path", str(path)])
    assert len(str(caught.value)) < 300


# ---- secrets in URLs ----
SECRET_URL = "https://user:PASSWORD@example.invalid/cifar-10-binary.tar.gz"


def test_saved_config_redacts_the_user_info_of_urls(tmp_path):
    cfg = load_config(["--download_url", SECRET_URL, "--device_target", "CPU"])
    assert cfg.download_url == SECRET_URL  # the run itself uses it
    cfg.save(str(tmp_path / "config.yaml"))
    text = (tmp_path / "config.yaml").read_text()
    assert "PASSWORD" not in text and "https://***@example.invalid/cifar-10-binary.tar.gz" in text


def test_errors_redact_the_user_info_of_urls():
    with pytest.raises(UserError) as caught:
        load_config(["--download_md5", SECRET_URL])
    assert "PASSWORD" not in str(caught.value) and "***@example.invalid" in str(caught.value)
    assert redact_url("get http://a:b@h/x and ftp://u@h2/ then") == "get http://***@h/x and ftp://***@h2/ then"
    assert redact_url("https://user:p@ss@host/x") == "https://***@host/x"


def test_download_messages_redact_the_user_info(tmp_path, capsys):
    url = "http://user:PASSWORD@127.0.0.1:9/cifar-10-binary.tar.gz"  # port 9 (discard): refused at once
    with pytest.raises(UserError) as caught:
        download_cifar10(str(tmp_path), url, "0" * 32, timeout=5)
    shown_text = str(caught.value) + capsys.readouterr().out
    assert "PASSWORD" not in shown_text and "***@127.0.0.1" in shown_text


# ---- device_target auto ----

@pytest.mark.parametrize("available, chosen, why", [
    (("CPU",), "CPU", " (no Ascend or GPU available to this MindSpore)"),
    (("GPU", "CPU"), "GPU", " (no Ascend available to this MindSpore)"),
    (("Ascend", "GPU", "CPU"), "Ascend", ""),
])
def test_device_target_auto_takes_ascend_else_gpu_else_cpu(monkeypatch, capsys, available, chosen, why):
    monkeypatch.setattr(device, "available_device_targets", lambda: available)
    assert load_config([]).device_target == chosen
    assert capsys.readouterr().out == f"device_target auto -> {chosen}{why}\n"
    assert load_config(["--device_target", "GPU"]).device_target == "GPU"  # explicit: exactly that
    assert capsys.readouterr().out == ""


def test_auto_is_resolved_before_the_device_policies_read_it():
    cfg = load_config(["--conv_impl", "fast"])  # this machine has no chip: auto is CPU
    assert cfg.device_target == "CPU"
    device.check_device_choices(cfg)  # fast and the AMP level are CPU-only choices
    assert device.resolve_sink_size(cfg.sink_size, cfg.device_target, 10) == 1


@pytest.mark.parametrize("target, needs", [("GPU", "CUDA 11.1 + cuDNN 8.0.x or CUDA 11.6 + cuDNN 8.5.x"),
                                           ("Ascend", "CANN toolkit")])
def test_a_missing_chip_names_what_to_install(target, needs):
    with pytest.raises(UserError) as caught:
        device.set_up_device(target)
    assert needs in str(caught.value) and "build" not in str(caught.value) and "\n" not in str(caught.value)


# ---- the original model-zoo flags ----

def test_original_aliases_train_url_and_result_dir():
    assert load_config(["--train_url", "/o"], script="train").output_path == "/o"
    assert load_config(["--result_dir", "/r"], script="postprocess").result_path == "/r"
    assert load_config(["--label_dir", "/p"], script="postprocess").label_path == os.path.join("/p", "labels.npy")
    cfg = load_config(["--data_url", "/d", "--train_url", "/o"], script="train")
    assert (cfg.data_path, cfg.output_path) == ("/d", "/o") and cfg.given_keys() == {"data_path", "output_path"}


@pytest.mark.parametrize("flags, match", [
    (["--run_modelarts", "true"], "ModelArts is not supported; run train.py directly"),
    (["--parameter_server", "True"], "parameter-server training is not supported; use data-parallel"),
    (["--device_num", "8"], "--device_num 8 needs a data-parallel launch"),
    (["--device_num", "8", "--run_distribute", "true"], "no launcher set the process count"),
    (["--device_num", "x"], "--device_num must be a whole number"),
])
def test_original_train_flags_that_cannot_work_are_refused_in_one_line(monkeypatch, flags, match):
    monkeypatch.delenv("MS_WORKER_NUM", raising=False)
    monkeypatch.delenv("RANK_SIZE", raising=False)
    with pytest.raises(UserError, match=match) as caught:
        load_config(flags, script="train")
    assert "\n" not in str(caught.value)


def test_original_train_flags_that_match_are_accepted(monkeypatch):
    monkeypatch.delenv("RANK_SIZE", raising=False)
    load_config(["--run_modelarts", "false", "--parameter_server", "false", "--device_num", "1"], script="train")
    monkeypatch.setenv("MS_WORKER_NUM", "2")
    load_config(["--device_num", "2", "--run_distribute", "true"], script="train")
    with pytest.raises(UserError, match="--device_num 4 does not match the 2 processes of this launch"):
        load_config(["--device_num", "4", "--run_distribute", "true"], script="train")


def test_export_width_and_height_set_image_size_and_must_agree():
    assert load_config(["--width", "32", "--height", "32"], script="export").image_size == 32
    cfg = load_config(["--width", "64", "--image_size", "64"], script="export")
    assert cfg.image_size == 64 and "image_size" in cfg.given_keys()
    with pytest.raises(UserError, match="--height 224 differs from --width 32"):
        load_config(["--width", "32", "--height", "224"], script="export")
    with pytest.raises(UserError, match="--width 32 differs from --image_size 64"):
        load_config(["--image_size", "64", "--width", "32"], script="export")
    with pytest.raises(UserError, match="--image_size must be at least 1 and at most 1024"):
        load_config(["--width", "99999"], script="export")


def test_original_flags_of_another_script_are_not_accepted():
    with pytest.raises(UserError, match="unrecognized arguments: --width 32"):
        load_config(["--width", "32"], script="train")
