"""Write a file so that it is either complete under its final name or not there at all.

Every file the project writes goes through `atomic_path`: the content goes to a temporary name
in the same folder, is fsynced, and is renamed into place; the folder is then fsynced so that
the rename survives a power loss. A failure (a full disk, a kill) leaves the previous file intact.

The folder may be shared with other users, so nothing here follows a link: the temporary file is
created with O_EXCL|O_NOFOLLOW (tempfile's flags), our own writes go through that descriptor, and
the rename happens only while the temporary name still holds the file that was created.
"""
import errno
import json
import os
import stat
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
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_durably(path: str, data: bytes) -> None:
    """Append `data` to the existing file `path` (never through a link) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


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
def _atomic_fd(path: str, suffix: str, same_inode: bool) -> Iterator[tuple[int, str]]:
    """A temporary file next to `path` (descriptor and name), renamed to `path` when the block succeeds:
    only if the name still holds the created file (`same_inode`), or at least a plain file, not a link."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=folder)  # O_EXCL|O_NOFOLLOW
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it private; the final file gets the usual mode
        yield fd, tmp
        now = os.lstat(tmp)
        if not (os.path.samestat(os.fstat(fd), now) if same_inode else stat.S_ISREG(now.st_mode)):
            raise OSError(errno.EEXIST, f"{tmp} was replaced while it was written; {path} is unchanged", tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(folder)
    finally:
        os.close(fd)
        remove_if_present(tmp)


@contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path next to `path` for a writer that opens files by name (MindSpore, numpy,
    matplotlib); when the block succeeds, move it to `path` durably.

    `suffix` is kept at the end of the temporary name, for writers that insist on an extension.
    """
    with _atomic_fd(path, suffix, same_inode=False) as (_, tmp):
        yield tmp


def write_atomic(path: str, data: bytes | str) -> None:
    """Write bytes (or UTF-8 text) to `path` atomically, through the descriptor that created the file."""
    with _atomic_fd(path, "", same_inode=True) as (fd, _):
        view = memoryview(data.encode("utf-8") if isinstance(data, str) else data)
        while view:
            view = view[os.write(fd, view):]


def write_json_atomic(path: str, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True))
