"""YAML defaults with command-line overrides.

Order of precedence: the repo's `config/sknet50_cifar10.yaml`, then the file given with
`--config_path`, then `--key value` flags. Every key is a flag; unknown keys are errors; every
value is checked against its rule in `src.utils.config_rules` (ranges and choices);
booleans accept true/false/1/0/yes/no (never `bool("False")`); a broken YAML file is an error
that names the line.
"""
import argparse
import math
import os
from typing import Any, Iterable

import yaml

from src.utils.atomic_file import write_atomic
from src.utils.config_rules import validate
from src.utils.errors import UserError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(REPO_ROOT, "config", "sknet50_cifar10.yaml")
# Flag names of the seed model-zoo scripts -> our keys.
ALIASES = {"data_url": "data_path"}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class Config(argparse.Namespace):
    """Attribute access to the resolved settings."""

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def save(self, path: str) -> None:
        """Write the resolved settings as YAML that `--config_path` accepts, e.g. next to checkpoints."""
        values = self.to_dict()
        source = values.pop("config_path", None)
        write_atomic(path, f"# resolved settings (defaults, then {source or 'no config file'}, then the flags)\n"
                     + yaml.safe_dump(values, sort_keys=False))


def read_yaml(path: str) -> dict[str, Any]:
    """Load a YAML mapping; every failure is a one-line `UserError` naming the file (and line)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError as err:
        raise UserError(f"config file {path} does not exist; pass an existing --config_path") from err
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"config file {path} cannot be read: {err}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"config file {path}{where}: invalid YAML ({problem})") from err
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
    raise ValueError(f"expected true or false, got {text!r}")


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    """Check a value against the type of its default; strings from the CLI are converted."""
    if value is None and default is not None:
        raise UserError(f"{source}: {key} must not be null (default {default!r})")
    if default is None:
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            return None
        if value is not None and not isinstance(value, (str, int, float)):
            raise UserError(f"{source}: {key} must be a single value, got {value!r}")
        return None if value is None else str(value)
    try:
        if isinstance(default, bool):
            return value if isinstance(value, bool) else parse_bool(value)
        if isinstance(default, int):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got {value!r}")
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"expected a finite number, got {value!r}")
            return number
        if isinstance(default, list):
            parsed = yaml.safe_load(value) if isinstance(value, str) else value
            if not isinstance(parsed, list):
                raise ValueError(f"expected a list such as [1, 2], got {value!r}")
            return parsed
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"expected a string, got {value!r}")
        return str(value)
    except (ValueError, TypeError, OverflowError, yaml.YAMLError) as err:
        raise UserError(f"{source}: bad value for {key}: {err}") from err


def _merge(base: dict[str, Any], update: dict[str, Any], defaults: dict[str, Any], source: str) -> dict[str, Any]:
    """Override `base` with `update`, typed by `defaults`; unknown keys are errors."""
    merged = dict(base)
    for key, value in update.items():
        key = ALIASES.get(key, key)
        if key not in defaults:
            raise UserError(f"{source}: unknown key {key!r}; the known keys are in {DEFAULT_CONFIG}")
        merged[key] = _coerce(key, value, defaults[key], source)
    return merged


def load_config(argv: Iterable[str] | None = None, description: str = "",
                defaults_path: str = DEFAULT_CONFIG, flag_aliases: dict[str, str] | None = None) -> Config:
    """Resolve the settings from the default YAML, an optional --config_path, and the CLI.

    Args:
        argv: the command line without the program name (default: sys.argv[1:]).
        description: shown by --help.
        defaults_path: the YAML file that defines every key and its default.
        flag_aliases: flags of one entry point that set another key, e.g. export.py's
            {"batch_size": "export_batch_size"}; the key named by the flag then has no flag
            there. They apply to the command line only: config files keep one meaning per key.
    """
    defaults = read_yaml(defaults_path)
    pre = _ErrorParser(add_help=False)
    pre.add_argument("--config_path", default=None)
    known, _ = pre.parse_known_args(argv)
    values = dict(defaults)
    if known.config_path:
        values = _merge(values, read_yaml(known.config_path), defaults, f"config file {known.config_path}")

    parser = _ErrorParser(description=description)
    parser.add_argument("--config_path", default=None, help="YAML file that overrides the defaults")
    aliases = {**ALIASES, **(flag_aliases or {})}
    for key, default in values.items():
        names = [f"--{alias}" for alias, target in aliases.items() if target == key]
        if key not in aliases:
            names.insert(0, f"--{key}")
        if not names:
            continue
        parser.add_argument(*names, dest=key, default=argparse.SUPPRESS, metavar=type(default).__name__.upper(),
                            help=f"default: {default!r}")
    args = vars(parser.parse_args(argv))
    args.pop("config_path", None)
    values = _merge(values, args, defaults, "command line")
    validate(values, {key: flag for flag, key in (flag_aliases or {}).items()})
    values["config_path"] = known.config_path
    return Config(**values)


class _ErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as a one-line `UserError` instead of usage + exit 2."""

    def error(self, message: str):
        raise UserError(f"{message}; see --help for the flags")
