"""The output folder of a training run: one run at a time, and a new run never touches an old one.

`RunFolderLock` holds an exclusive `flock` on `FOLDER/.train.lock` for the life of a run; the file
names the holder (pid and host) so a second run can say who has it. The kernel drops the lock when
its process dies, however it dies, so a stale lock of a dead process is simply taken over; a run that
ends deletes the file (so a finished folder holds only the run's own files).
(flock on NFS is only as good as the NFS server's lock support; a local disk or Lustre is safe.)

`refuse_used_folder` stops a new run (no `--resume`) in a folder that already holds a run's files,
unless `--overwrite true` asks to delete them first: only files this project wrote for a run
(checkpoints whose sidecars say so, their sidecars, config.yaml, metrics.csv, metrics.png), never
another `.ckpt` that happens to sit there.
"""
import fcntl
import json
import os
import socket
import stat

from src.utils.atomic_file import remove_if_present
from src.utils.checkpoint_file import SIDECAR_SUFFIX, CorruptCheckpoint, read_sidecar
from src.utils.errors import UserError

LOCK_NAME = ".train.lock"
RUN_FILES = ("config.yaml", "metrics.csv", "metrics.png")  # besides checkpoints and their sidecars


class RunFolderLock:
    """Context manager: an exclusive lock on `folder` (created if missing) for one training run."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, LOCK_NAME)
        self._fd: int | None = None

    def __enter__(self) -> "RunFolderLock":
        make_output_folder(os.path.dirname(self.path))
        while True:
            fd = _open_lock_file(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = _read_holder(fd)
                os.close(fd)
                raise UserError(f"--output_path {os.path.dirname(self.path)} is in use by another training run "
                                f"({holder}); wait for it to finish, stop it, or pick another --output_path") from err
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder deleted this file as it finished: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *_exc) -> None:
        if self._fd is not None:
            remove_if_present(self.path)  # still locked: a run that opened it meanwhile sees it gone and retries
            os.close(self._fd)
            self._fd = None


def make_output_folder(folder: str) -> None:
    """Create `folder` (and its parents); one line when a file is in the way."""
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise UserError(f"--output_path {folder} is a file, not a folder; pick a folder for the run's files")
    os.makedirs(folder, exist_ok=True)


def deleted_folder_error(folder: str) -> UserError | None:
    """The error to report when a write failed because `folder` itself is gone (None when it exists)."""
    if os.path.isdir(folder):
        return None
    return UserError(f"--output_path {folder} was deleted while the run was writing to it; the files of the run "
                     "that were in it are lost; start again, or restore the folder and continue with --resume auto")


def _open_lock_file(path: str) -> int:
    """Open (or create) the lock file without following a link; refuse anything but a plain file of its own
    (a hard link would let the run overwrite a file elsewhere)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as err:
        raise UserError(f"{path} cannot be opened as the run's lock file ({err.strerror}: a link or a folder "
                        "there?); delete it and try again") from err
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise UserError(f"{path} is not a plain file of its own (a link to another file, or a device); "
                        "delete it and try again")
    return fd


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on host {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its pid yet"


def _written_by_a_run(checkpoint: str) -> bool:
    """Whether the sidecar of `checkpoint` says train.py wrote it (a training checkpoint or best.ckpt)."""
    try:
        meta = read_sidecar(checkpoint)
    except CorruptCheckpoint:
        return False
    return bool(meta) and (meta.get("resumable") is True or "top1" in meta and "global_step" in meta)


def run_files(folder: str) -> list[str]:
    """The names in `folder` that a training run wrote: checkpoints whose sidecars say so, those sidecars,
    config.yaml, metrics.csv and metrics.png."""
    if not os.path.isdir(folder):
        return []
    suffix = ".ckpt" + SIDECAR_SUFFIX
    checkpoints = {n[:-len(SIDECAR_SUFFIX)] for n in os.listdir(folder) if n.endswith(suffix)}
    ours = {n for n in checkpoints if _written_by_a_run(os.path.join(folder, n))}
    return sorted(n for n in os.listdir(folder)
                  if n in RUN_FILES or n in ours or n.endswith(suffix) and n[:-len(SIDECAR_SUFFIX)] in ours)


def refuse_used_folder(folder: str, overwrite: bool) -> list[str]:
    """Refuse to start a new run in a folder holding another run; with `overwrite`, delete that run's
    files (returned) instead. Call it while holding the folder's lock."""
    names = run_files(folder)
    if not names:
        return []
    if not overwrite:
        ckpts = sum(n.endswith(".ckpt") for n in names)
        others = [n for n in names if n in RUN_FILES]
        what = ", ".join([f"{ckpts} checkpoint{'s' * (ckpts != 1)}"] * bool(ckpts) + others)
        raise UserError(f"--output_path {folder} already holds a training run ({what}); continue it with "
                        "--resume auto, pick another --output_path, or pass --overwrite true to delete it")
    for name in names:
        remove_if_present(os.path.join(folder, name))
    return names
