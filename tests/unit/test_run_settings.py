"""The settings a run folder or a checkpoint carries (src/utils/run_settings.py), and the flags that may not
contradict them (Config.given_by, recorded by load_config)."""
import json

import pytest
import yaml

from src.utils.config import load_config
from src.utils.errors import UserError
from src.utils.run_settings import follow_run, read_run_settings

TINY_RUN = {"arch": "sknet_tiny", "stem_type": "cifar", "class_num": 10, "image_size": 32}


def a_run(folder, sidecar=TINY_RUN, config=TINY_RUN, ema_decay=0.0):
    """A run folder as train.py leaves it (file contents do not matter here, only config.yaml and sidecars)."""
    folder.mkdir()
    if config is not None:
        (folder / "config.yaml").write_text(yaml.safe_dump({**config, "ema_decay": ema_decay, "epoch_size": 2}))
    for name in ("sknet_tiny-1_10.ckpt", "sknet_tiny-2_10.ckpt"):
        (folder / name).write_bytes(b"weights")
        (folder / f"{name}.json").write_text(json.dumps({**(sidecar or {}), "size": 7, "sha256": "0"}))
    return folder


def test_load_config_records_the_keys_given_by_flags_and_config_files(tmp_path):
    (tmp_path / "c.yaml").write_text("class_num: 12\nimage_size: 64\n")
    cfg = load_config(["--config_path", str(tmp_path / "c.yaml"), "--image_size", "32", "--batch_size", "3"],
                      flag_aliases={"batch_size": "export_batch_size"})
    assert [cfg.given_by(key) for key in ("class_num", "image_size", "export_batch_size", "arch")] == [
        f"config file {tmp_path / 'c.yaml'}", "--image_size", "--batch_size", None]
    assert not any(key.startswith("_") for key in cfg.to_dict())  # never saved into a run's config.yaml
    assert load_config([]).given_by("image_size") is None


def test_a_run_folder_gives_its_config_and_a_checkpoint_its_sidecar(tmp_path):
    run = a_run(tmp_path / "run", sidecar={**TINY_RUN, "image_size": 48})
    assert read_run_settings(str(run)).values == TINY_RUN
    assert read_run_settings(str(run)).source == str(run / "config.yaml")
    from_sidecar = read_run_settings(str(run / "sknet_tiny-1_10.ckpt"))
    assert from_sidecar.values == {**TINY_RUN, "image_size": 48}
    assert from_sidecar.source == f"the sidecar of {run / 'sknet_tiny-1_10.ckpt'}"
    # Without sidecar settings, a checkpoint takes its run's config.yaml; without config.yaml, a folder the newest sidecar.
    no_sidecar = a_run(tmp_path / "old", sidecar=None)
    assert read_run_settings(str(no_sidecar / "sknet_tiny-2_10.ckpt")).values == TINY_RUN
    no_config = a_run(tmp_path / "moved", config=None)
    assert read_run_settings(str(no_config)).source == f"the sidecar of {no_config / 'sknet_tiny-2_10.ckpt'}"


def test_eval_follows_the_run_without_repeated_flags(tmp_path, capsys):
    run = a_run(tmp_path / "run", ema_decay=0.999)
    cfg = load_config(["--checkpoint_path", str(run)])
    assert (cfg.arch, cfg.stem_type, cfg.image_size) == ("sknet50", "imagenet", 224)  # the defaults
    follow_run(cfg, cfg.checkpoint_path)
    assert {key: getattr(cfg, key) for key in TINY_RUN} == TINY_RUN
    line = capsys.readouterr().out.strip().splitlines()[-1]  # after load_config's device_target line
    assert line == (f"settings: arch sknet_tiny, stem_type cifar, class_num 10, image_size 32 (from "
                    f"{run / 'config.yaml'}); the run also has EMA weights (--use_ema true)")


def test_a_flag_that_agrees_is_fine_one_that_contradicts_is_a_one_line_error(tmp_path):
    run = a_run(tmp_path / "run")
    follow_run(load_config(["--image_size", "32", "--arch", "sknet_tiny"]), str(run))
    with pytest.raises(UserError) as info:
        follow_run(load_config(["--image_size", "224"]), str(run / "sknet_tiny-2_10.ckpt"))
    assert str(info.value) == (f"--image_size 224 contradicts the sidecar of {run / 'sknet_tiny-2_10.ckpt'}, which "
                               "holds image_size 32; drop it, or pass a run or file with image_size 224")
    (tmp_path / "other.yaml").write_text("stem_type: imagenet\n")
    with pytest.raises(UserError, match=r"^stem_type imagenet in config file .*other.yaml contradicts .*config.yaml, "
                                        r"which holds stem_type cifar"):
        follow_run(load_config(["--config_path", str(tmp_path / "other.yaml")]), str(run))


def test_without_run_settings_the_defaults_and_flags_are_said(tmp_path, capsys):
    (tmp_path / "x.ckpt").write_bytes(b"from elsewhere")
    cfg = load_config(["--arch", "sknet_tiny"])
    assert follow_run(cfg, str(tmp_path / "x.ckpt")) is None
    assert "settings: arch sknet_tiny, stem_type imagenet, class_num 10, image_size 224 (from the defaults and " \
           f"flags; {tmp_path / 'x.ckpt'} carries no run settings)" in capsys.readouterr().out
    with pytest.raises(UserError, match="nope.ckpt does not exist"):
        follow_run(cfg, str(tmp_path / "nope.ckpt"))


def test_a_run_setting_is_checked_like_a_flag(tmp_path):
    run = a_run(tmp_path / "run", config={**TINY_RUN, "image_size": 0})
    with pytest.raises(UserError, match=r"config.yaml holds a setting this version refuses \(--image_size must be"):
        follow_run(load_config([]), str(run))


def test_use_ema_on_a_run_without_ema_is_refused_before_any_checkpoint_is_read(tmp_path):
    run = a_run(tmp_path / "run", ema_decay=0.0)
    with pytest.raises(UserError, match=r"^--use_ema true, but the run of .*config.yaml was trained without "
                                        r"--ema_decay, so its checkpoints hold no EMA weights; drop --use_ema$"):
        follow_run(load_config(["--use_ema", "true"]), str(run))
    follow_run(load_config(["--use_ema", "true"]), str(a_run(tmp_path / "ema", ema_decay=0.99)))
