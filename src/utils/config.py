"""YAML defaults with command-line overrides.

Order of precedence: the repo's `config/sknet50_cifar10.yaml`, then the file given with
`--config_path`, then `--key value` flags. Each script (`script=` of `load_config`) has a flag for
each key it reads (src.utils.config_rules.KEYS) and for the original model-zoo flags it honours; a
config file may hold every key (a run's config.yaml does). Unknown keys are errors; every value is
checked against its rule (ranges and choices); booleans accept true/false/1/0/yes/no (never
`bool("False")`); a broken, oversized or alias-bomb YAML file is an error that names the file.
"""
import argparse
import math
import os
from typing import Any, Iterable

import yaml

from src.utils.atomic_file import write_atomic
from src.utils.config_rules import GROUPS, KEYS, LEGACY_ALIASES, LEGACY_FLAGS, allowed, keys_of, validate
from src.utils.device import resolve_device_target
from src.utils.errors import UserError
from src.utils.safe_text import clip, redact_url, shown

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(REPO_ROOT, "config", "sknet50_cifar10.yaml")
# Flag names of the seed model-zoo scripts -> our keys, in every script and config file.
ALIASES = {"data_url": "data_path"}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# A config file holds about 60 short keys (a few KB); more is a mistake or an attack (a 60 MB scalar
# takes minutes to parse), so it is refused before parsing.
MAX_CONFIG_BYTES = 1 << 20
# Values in a parsed file, with every YAML alias expanded: an alias bomb stays small as a file and as
# shared objects, but formatting or walking it would take gigabytes.
MAX_CONFIG_VALUES = 10_000


class Config(argparse.Namespace):
    """Attribute access to the resolved settings."""

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if not key.startswith("_")}

    def given_keys(self) -> frozenset[str]:
        """The keys set on the command line (by their flag, an alias or an original model-zoo flag)."""
        return getattr(self, "_given", frozenset())

    def given_by(self, key: str) -> str | None:
        """Where a key not left at its default was set: its flag (e.g. "--batch_size"), "config file PATH", or
        None (src/utils/run_settings.py refuses a given value that contradicts a run)."""
        if key in self.given_keys():
            return f"--{getattr(self, '_flag_names', {}).get(key, key)}"
        return f"config file {self.config_path}" if key in getattr(self, "_config_file_keys", ()) else None

    def save(self, path: str) -> None:
        """Write the resolved settings as YAML that `--config_path` accepts, e.g. next to checkpoints.
        The user-info of URLs (user:password@) is redacted: the file is readable by others."""
        values = {key: redact_url(value) if isinstance(value, str) else value for key, value in self.to_dict().items()}
        source = values.pop("config_path", None)
        write_atomic(path, f"# resolved settings (defaults, then {source or 'no config file'}, then the flags)\n"
                     + yaml.safe_dump(values, sort_keys=False))


def _expanded_size(value: Any, memo: dict[int, int | None]) -> int:
    """How many values `value` holds with every YAML alias expanded (shared objects counted once each time
    they appear, computed without expanding them)."""
    if not isinstance(value, (list, dict)):
        return 1
    if id(value) in memo:
        if memo[id(value)] is None:
            raise ValueError("it refers to itself through an alias")
        return memo[id(value)]
    memo[id(value)] = None
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    memo[id(value)] = total = 1 + sum(_expanded_size(item, memo) for item in items)
    return total


def read_yaml(path: str) -> dict[str, Any]:
    """Load a YAML mapping; every failure is a one-line `UserError` naming the file (and line)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)  # read(), not the size: /dev/zero or a pipe has none
        if len(raw) > MAX_CONFIG_BYTES:
            raise UserError(f"config file {path} is larger than {MAX_CONFIG_BYTES // 2 ** 20} MiB; a config file "
                            "holds a few KB of key: value lines")
        data = yaml.safe_load(raw.decode("utf-8"))
        size = _expanded_size(data, {})
    except FileNotFoundError as err:
        raise UserError(f"config file {path} does not exist; pass an existing --config_path") from err
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"config file {path} cannot be read: {clip(str(err))}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"config file {path}{where}: invalid YAML ({clip(problem)})") from err
    except (RecursionError, ValueError) as err:
        why = "it is nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise UserError(f"config file {path} is not a config ({why}); write plain key: value lines") from err
    if size > MAX_CONFIG_VALUES:
        raise UserError(f"config file {path} expands to more than {MAX_CONFIG_VALUES} values (YAML aliases?); "
                        "write plain key: value lines")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of key: value, not {type(data).__name__}")
    return data


def parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {shown(text)}")


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    """Check a value against the type of its default; strings from the CLI are converted."""
    if value is None and default is not None:
        raise UserError(f"{source}: {key} must not be null (default {shown(default)})")
    if default is None:
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            return None
        if not isinstance(value, (str, int, float)):
            raise UserError(f"{source}: {key} must be a single value, got {shown(value)}")
        return str(value)
    try:
        if isinstance(default, bool):
            return value if isinstance(value, bool) else parse_bool(value)
        if isinstance(default, int):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(f"expected an integer, got {shown(value)}")
            return int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got {shown(value)}")
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"expected a finite number, got {shown(value)}")
            return number
        if isinstance(default, list):
            parsed = yaml.safe_load(value) if isinstance(value, str) else value
            if not isinstance(parsed, list):
                raise ValueError(f"expected a list such as [1, 2], got {shown(value)}")
            return parsed
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"expected a string, got {shown(value)}")
        return str(value)
    except (ValueError, TypeError, OverflowError, yaml.YAMLError) as err:
        raise UserError(f"{source}: bad value for {key}: {clip(str(err))}") from err


def _merge(base: dict[str, Any], update: dict[str, Any], defaults: dict[str, Any], source: str) -> dict[str, Any]:
    """Override `base` with `update`, typed by `defaults`; unknown keys are errors."""
    merged = dict(base)
    for key, value in update.items():
        key = ALIASES.get(key, key) if isinstance(key, str) else key
        if key not in defaults:
            raise UserError(f"{source}: unknown key {shown(key)}; the known keys are in {DEFAULT_CONFIG}")
        merged[key] = _coerce(key, value, defaults[key], source)
    return merged


def _metavar(key: str, default: Any) -> str:
    """The type a key's flag takes, as --help shows it."""
    rule = KEYS[key].rule if key in KEYS else None
    if hasattr(rule, "values"):
        return "{" + ",".join(rule.values) + "}"
    if isinstance(default, bool):
        return "BOOL"
    if isinstance(default, (int, float)):
        return type(default).__name__.upper()
    return KEYS[key].metavar if key in KEYS and KEYS[key].metavar else "PATH"


def _help(key: str, default: Any) -> str:
    """One line: the key's meaning, what it allows (choices are in the metavar), its default."""
    rule = KEYS[key].rule if key in KEYS else None
    limits = "" if hasattr(rule, "values") else allowed(key, default)
    shown_default = "null" if default is None else str(default).lower() if isinstance(default, bool) else default
    parts = [KEYS[key].meaning if key in KEYS else "", limits, f"default: {shown_default}"]
    return "; ".join(part for part in parts if part).replace("%", "%%")


def _refuse_unread_flags(extras: list[str], script: str) -> None:
    """A config key this script does not read, given as a flag, is a one-line error naming who reads it."""
    for token in extras:
        name = token[2:].split("=", 1)[0] if token.startswith("--") else ""
        if name in KEYS:
            readers = ", ".join(f"{reader}.py" for reader in KEYS[name].scripts) or "no script"
            raise UserError(f"{script}.py does not read --{name} (it is a key of {readers}); drop the flag. "
                            "A --config_path file may hold it: config files take every key")
    raise UserError(f"unrecognized arguments: {clip(' '.join(extras))}; see --help for the flags")


def load_config(argv: Iterable[str] | None = None, description: str = "",
                defaults_path: str = DEFAULT_CONFIG, flag_aliases: dict[str, str] | None = None,
                script: str | None = None) -> Config:
    """Resolve the settings from the default YAML, an optional --config_path, and the CLI.

    Args:
        argv: the command line without the program name (default: sys.argv[1:]).
        description: shown by --help: its first line above the flags, the rest (the examples) below.
        defaults_path: the YAML file that defines every key and its default.
        flag_aliases: flags of one entry point that set another key, e.g. export.py's
            {"batch_size": "export_batch_size"}; the key named by the flag then has no flag
            there. They apply to the command line only: config files keep one meaning per key.
        script: the entry point ("train", "eval", "export", "preprocess", "postprocess"): it gets flags
            for the keys it reads and its original model-zoo flags only; None (code, tests): every key.

    `device_target: auto` is resolved here, once (src.utils.device.resolve_device_target), so that
    everything downstream sees Ascend, GPU or CPU.
    """
    defaults = read_yaml(defaults_path)
    pre = _ErrorParser(add_help=False)
    pre.add_argument("--config_path", default=None)
    known, _ = pre.parse_known_args(argv)
    values = dict(defaults)
    from_file = read_yaml(known.config_path) if known.config_path else {}
    if known.config_path:
        values = _merge(values, from_file, defaults, f"config file {known.config_path}")

    parser = _parser(description, values, script, {**ALIASES, **LEGACY_ALIASES.get(script, {}),
                                                   **(flag_aliases or {})})
    args, extras = parser.parse_known_args(argv)
    if extras:
        _refuse_unread_flags(extras, script or "this script")
    args = vars(args)
    args.pop("config_path", None)
    args.pop(POSITIONALS.get(script, ("",))[0], None)
    legacy = {flag: args.pop(f"legacy {flag}") for flag in LEGACY_FLAGS.get(script, {}) if f"legacy {flag}" in args}
    given = set(args)
    values = _merge(values, args, defaults, "command line")
    for flag, value in legacy.items():
        LEGACY_FLAGS[script][flag].apply(value, values, given)
    validate(values, {key: flag for flag, key in (flag_aliases or {}).items()})
    if "device_target" in keys_of(script):
        values["device_target"] = resolve_device_target(values["device_target"])
    values["config_path"] = known.config_path
    cfg = Config(**values)
    cfg._given = frozenset(key for key in given if not key.startswith("--"))
    cfg._config_file_keys = frozenset(ALIASES.get(key, key) for key in from_file)
    cfg._flag_names = {key: flag for flag, key in (flag_aliases or {}).items()}
    return cfg


# Entry points that take positional arguments besides the flags: (metavar, meaning).
POSITIONALS = {"infer": ("IMAGE_OR_FOLDER", "PNG/JPEG files, or folders of them, to classify")}


def _parser(description: str, values: dict[str, Any], script: str | None, aliases: dict[str, str]):
    """--help lists the keys `script` reads, grouped as in KEYS, then its original flags and its examples."""
    summary, _, examples = description.strip().partition("\n")
    epilog = (f"examples:\n{examples.strip(chr(10))}\n\n" if examples.strip() else "") + (
        "Flags of keys that this script does not read are refused; a --config_path file may hold every key "
        "(a run's config.yaml does).")
    parser = _ErrorParser(description=summary, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
                          prog=f"{script}.py" if script else None)
    parser.add_argument("--config_path", default=None, metavar="PATH", help="YAML file that overrides the defaults")
    if script in POSITIONALS:  # the script takes them out of argv before parsing; listed for --help's usage only
        parser.add_argument(POSITIONALS[script][0], nargs="*", default=argparse.SUPPRESS, help=POSITIONALS[script][1])
    groups = {group: parser.add_argument_group(group) for group in GROUPS}
    read = keys_of(script)
    for key in read:
        names = [f"--{alias}" for alias, target in aliases.items() if target == key]
        if key not in aliases:
            names.insert(0, f"--{key}")
        if names:
            groups[KEYS[key].group].add_argument(*names, dest=key, default=argparse.SUPPRESS,
                                                 metavar=_metavar(key, values[key]), help=_help(key, values[key]))
    legacy = LEGACY_FLAGS.get(script, {})
    if legacy:
        original = parser.add_argument_group("original model-zoo flags")
        for flag, spec in legacy.items():
            original.add_argument(f"--{flag}", dest=f"legacy {flag}", default=argparse.SUPPRESS, metavar=spec.metavar,
                                  help=spec.meaning.replace("%", "%%"))
    return parser


class _ErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as a one-line `UserError` instead of usage + exit 2."""

    def error(self, message: str):
        raise UserError(f"{clip(message)}; see --help for the flags")
