"""Write a file so that it is either complete under its final name or not there at all.

Every file the project writes goes through `atomic_path`: the content goes to a temporary name
in the same folder, is fsynced, and is renamed into place; the folder is then fsynced so that
the rename survives a power loss. A failure (a full disk, a kill) leaves the previous file intact.
"""
import json
import os
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

TEMP_PREFIX = ".tmp-"  # temporary files while they are written; never read as results


def fsync_dir(folder: str) -> None:
    """Make a rename in `folder` durable; a filesystem that cannot open folders is skipped."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def remove_if_present(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path next to `path`; when the block succeeds, move it to `path` durably.

    `suffix` is kept at the end of the temporary name, for writers that insist on an extension.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the final file gets the usual mode
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(folder)
    finally:
        remove_if_present(tmp)


def write_atomic(path: str, data: bytes | str) -> None:
    """Write bytes (or UTF-8 text) to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def write_json_atomic(path: str, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True))
