"""Every config key is checked once where the config is loaded: one line naming the flag, the value
and what is allowed (src/utils/config_rules.py)."""
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
