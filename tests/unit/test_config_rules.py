"""Every config key is checked once where the config is loaded: one line naming the flag, the value
and what is allowed (src/utils/config_rules.py)."""
import re

import pytest

from src.sknet50 import MODELS
from src.training.train_step import LOSS_SCALE_TYPES
from src.utils import config_rules
from src.utils.config import DEFAULT_CONFIG, load_config, read_yaml
from src.utils.device import AMP_LEVELS, CONV_IMPLS, DEVICE_TARGETS
from src.utils.errors import UserError


@pytest.mark.parametrize("flags, match", [
    (["--image_size", "0"], "--image_size must be at least 1"),
    (["--lr_decay_mode", "foo"], "--lr_decay_mode must be one of poly | cosine"),
    (["--label_smooth_factor", "1.5"], "--label_smooth_factor must be at least 0 and below 1"),
    (["--warmup_epochs", "-1"], "--warmup_epochs must be at least 0"),
    (["--momentum", "-1"], "--momentum must be "),
    (["--weight_decay", "-1"], "--weight_decay must be "),
    (["--seed", "-1"], "--seed must be at least 0 and at most 4294967295"),
    (["--eval_batch_size", "0"], "--eval_batch_size must be "),
    (["--eval_batch_size", "-5"], "--eval_batch_size must be "),
    (["--num_parallel_workers", "1000"], "--num_parallel_workers must be at least 0 and at"),
    (["--image_size", "7"], "--image_size must be at least 32 with --stem_type imagenet"),
    (["--image_size", "7", "--stem_type", "cifar"], "--image_size must be at least 8 with --stem_type cifar"),
    (["--lr_max", "-1"], "--lr_max must be at least 0"),
    (["--loss_scale_type", "dynamic", "--loss_scale", "0"], "--loss_scale must be above 0"),
    (["--device_id", "-1"], "--device_id must be "),
    (["--class_num", "0"], "--class_num must be at least 2"),
    (["--arch", "resnet"], "--arch must be one of sknet50 | sknet_tiny"),
    (["--download_sha256", "abc"], "--download_sha256 must be 64 hex digits"),
    (["--sink_size", "0"], "--sink_size must be auto or a whole number from 1 to 100000"),
])
def test_bad_values_are_one_line_errors_naming_flag_value_and_range(flags, match):
    with pytest.raises(UserError, match=match.replace("|", r"\|").replace("(", r"\(")) as caught:
        load_config(flags)
    message = str(caught.value)
    assert "\n" not in message
    given = flags[flags.index(match.split()[0]) + 1]
    got = message.rsplit(", got ", 1)[1].strip("'")
    assert got == given or float(got) == float(given), message


def test_a_config_file_is_checked_like_the_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("momentum: 2.0\n")
    with pytest.raises(UserError, match="--momentum must be at least 0 and at most 1"):
        load_config(["--config_path", str(path)])


def test_an_entry_point_alias_is_named_as_the_user_typed_it():
    with pytest.raises(UserError, match="--batch_size must be "):
        load_config(["--batch_size", "0"], flag_aliases={"batch_size": "export_batch_size"})


def test_edges_that_are_allowed():
    cfg = load_config(["--image_size", "8", "--stem_type", "cifar", "--lr_max", "0", "--label_smooth_factor", "0",
                       "--num_parallel_workers", "0", "--seed", "0", "--keep_checkpoint_max", "0"])
    assert (cfg.image_size, cfg.lr_max) == (8, 0.0)
    assert load_config(["--image_size", "32"]).image_size == 32


def test_every_key_of_the_defaults_has_a_rule_and_the_defaults_pass():
    defaults = read_yaml(DEFAULT_CONFIG)
    assert list(config_rules.RULES) == list(defaults), "add each new key to RULES, in the YAML's order"
    config_rules.validate(defaults)


def test_the_choices_match_what_the_code_accepts():
    assert set(config_rules.RULES["arch"].values) == set(MODELS)
    assert config_rules.RULES["amp_level"].values == AMP_LEVELS
    assert config_rules.RULES["conv_impl"].values == CONV_IMPLS
    assert config_rules.RULES["device_target"].values == ("auto", *DEVICE_TARGETS)
    assert config_rules.RULES["loss_scale_type"].values == LOSS_SCALE_TYPES


@pytest.mark.parametrize("flags, match", [
    (["--class_num", "99999999999999999999"], "--class_num must be at least 2 and at most 100000"),
    (["--class_num", "100000000"], "--class_num must be at least 2 and at most 100000"),
    (["--image_size", "100000"], "--image_size must be at least 1 and at most 1024"),
    (["--batch_size", "1000000"], "--batch_size must be at least 1 and at most 4096"),
    (["--eval_batch_size", "1000000"], "--eval_batch_size must be at least 1 and at most 10000"),
    (["--epoch_size", "1000000000"], "--epoch_size must be at least 1 and at most 10000"),
    (["--export_batch_size", "100000"], "--export_batch_size must be at least 1 and at most 4096"),
    (["--sink_size", "1000000"], "--sink_size must be auto or a whole number from 1 to 100000"),
    (["--log_interval", "1000000"], "--log_interval must be at least 0 and at most 100000"),
    (["--keep_checkpoint_max", "100000"], "--keep_checkpoint_max must be at least 0 and at most 10000"),
    (["--save_checkpoint_epochs", "100000"], "--save_checkpoint_epochs must be at least 1 and at most 10000"),
    (["--eval_interval", "100000"], "--eval_interval must be at least 0 and at most 10000"),
    (["--warmup_epochs", "1e9"], "--warmup_epochs must be at least 0 and at most 10000"),
    (["--lr_max", "1e30"], "--lr_max must be at least 0 and at most 10"),
    (["--weight_decay", "5"], "--weight_decay must be at least 0 and at most 1"),
    (["--loss_scale", "1e30"], "bad value for loss_scale"),  # an int key: 1e30 is not a whole number
    (["--loss_scale", str(2 ** 40)], "--loss_scale must be above 0 and at most 16777216"),
])
def test_every_numeric_key_has_an_upper_bound_with_a_one_line_error(flags, match):
    with pytest.raises(UserError, match=match) as caught:
        load_config(flags + ["--device_target", "CPU"])
    assert "\n" not in str(caught.value)


def test_every_numeric_key_has_a_bounded_rule():
    defaults = read_yaml(DEFAULT_CONFIG)
    for key, default in defaults.items():
        rule = config_rules.RULES[key]
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert isinstance(rule, config_rules.Range), key
            high = rule.high() if callable(rule.high) else rule.high
            assert high is not None and high < 2 ** 33, key
    assert config_rules.RULES["sink_size"].problem(str(10 ** 6))


def test_an_error_never_formats_an_unbounded_value():
    with pytest.raises(UserError) as caught:
        load_config(["--class_num", "9" * 5000])
    assert len(str(caught.value)) < 300 and "\n" not in str(caught.value)
    with pytest.raises(UserError) as caught:
        load_config(["--arch", "x" * 100_000])
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize("script", config_rules.SCRIPTS)
def test_help_lists_only_the_keys_the_script_reads_grouped_with_type_range_default(script, capsys):
    with pytest.raises(SystemExit):
        load_config(["--help"], description="Do it.\n\n    python x.py --flag 1\n", script=script)
    text = capsys.readouterr().out
    assert "NONETYPE" not in text and "STR " not in text and "STR\n" not in text
    assert "examples:\n    python x.py --flag 1" in text
    for key, spec in config_rules.KEYS.items():
        listed = re.search(rf"\[--{key} ", text)  # in the usage line: a flag, not a mention in a meaning
        assert bool(listed) == (script in spec.scripts), (script, key)
    groups = [group for group in config_rules.GROUPS if f"\n{group}:\n" in text]
    assert groups, text
    assert text.index(f"\n{groups[0]}:\n") < text.index("examples:")


def test_help_of_train_states_meaning_range_and_default_of_a_key(capsys):
    with pytest.raises(SystemExit):
        load_config(["--help"], description="Train.", script="train")
    text = " ".join(capsys.readouterr().out.split())
    assert "--epoch_size INT training epochs; at least 1 and at most 10000; default: 90" in text
    assert "--lr_decay_mode {poly,cosine,linear,steps}" in text
    assert "--device_target {auto,Ascend,GPU,CPU}" in text and "default: auto" in text
    assert "--train_url PATH" in text and "--device_num N" in text and "--ckpt_file" not in text


@pytest.mark.parametrize("script, flag", [("train", "ckpt_file"), ("eval", "epoch_size"), ("export", "data_path"),
                                          ("postprocess", "arch"), ("preprocess", "lr_max")])
def test_a_flag_the_script_does_not_read_is_refused_naming_who_reads_it(script, flag):
    with pytest.raises(UserError, match=f"{script}.py does not read --{flag} .*config files take every key"):
        load_config([f"--{flag}", "1"], script=script)


@pytest.mark.parametrize("script", config_rules.SCRIPTS)
def test_a_run_config_with_every_key_loads_in_every_script(tmp_path, script):
    path = str(tmp_path / "config.yaml")
    load_config(["--epoch_size", "3", "--device_target", "CPU"]).save(path)
    cfg = load_config(["--config_path", path], script=script)
    assert cfg.epoch_size == 3 and cfg.device_target == "CPU"


@pytest.mark.parametrize("flag", ["label_smooth_factor", "ema_decay"])
def test_an_exclusive_upper_bound_refuses_the_bound_itself(flag):
    with pytest.raises(UserError, match=f"--{flag} must be at least 0 and below 1"):
        load_config([f"--{flag}", "1"])
    assert getattr(load_config([f"--{flag}", "0.99"]), flag) == 0.99


def test_every_bound_of_every_range_is_in_or_out_as_its_rule_says():
    ranges = {key: rule for key, rule in config_rules.RULES.items() if isinstance(rule, config_rules.Range)}
    assert any(rule.below for rule in ranges.values()) and any(rule.above for rule in ranges.values())
    for key, rule in ranges.items():
        high = rule.high() if callable(rule.high) else rule.high
        for bound, exclusive in ((rule.low, rule.above), (high, rule.below)):
            if bound is not None:
                assert (rule.problem(bound) is not None) == exclusive, (key, bound)
        if rule.low is not None:
            assert rule.problem(rule.low - 1) is not None, key
        if high is not None:
            assert rule.problem(high + 1) is not None, key
