"""What a message or a saved file may show of a value the user gave: bounded in length, no secrets."""
import re
import reprlib
from typing import Any

# Enough to recognise a value in a one-line error; a YAML alias bomb or a 60 MB string must not be formatted.
MAX_SHOWN = 120
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = MAX_SHOWN
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple, _REPR.maxset = 3, 6, 6, 6, 6
# The user-info part of a URL (scheme://user:password@host): a password must not land in a file or a log.
_USER_INFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")


def redact_url(text: str) -> str:
    """`text` with the user-info of every URL in it replaced by `***`."""
    return _USER_INFO.sub(r"\1***@", text)


def clip(text: str) -> str:
    """`text` with URLs redacted, cut to `MAX_SHOWN` characters."""
    text = redact_url(text)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


def shown(value: Any) -> str:
    """`repr(value)` for a message: URLs redacted, nested values and long texts cut (never fully formatted)."""
    if isinstance(value, str):
        value = redact_url(value)
    return clip(_REPR.repr(value))
