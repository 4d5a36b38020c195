import pytest

from src.utils.config import load_config
from src.utils.errors import UserError


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
