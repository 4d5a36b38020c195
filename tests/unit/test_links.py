"""A run never writes through a link planted in its folder (which others may share): the lock file, the
atomic writes and metrics.csv's appends."""
import os
import tempfile

import pytest

from src.training.run_folder import LOCK_NAME, RunFolderLock
from src.training.train_log import MetricsCSV
from src.utils.atomic_file import write_atomic
from src.utils.errors import UserError

SECRET = b"a file outside the folder\n"


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_bytes(SECRET)
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize("link", [os.symlink, os.link])
def test_the_lock_refuses_a_link_and_leaves_its_target_alone(tmp_path, victim, link):
    out = tmp_path / "out"
    out.mkdir()
    link(victim, out / LOCK_NAME)
    with pytest.raises(UserError, match=LOCK_NAME):
        with RunFolderLock(str(out)):
            pass
    assert victim.read_bytes() == SECRET


def test_the_lock_of_a_run_is_written_and_removed(tmp_path):
    with RunFolderLock(str(tmp_path)) as lock:
        assert b'"pid"' in open(lock.path, "rb").read()
    assert not os.path.exists(tmp_path / LOCK_NAME)


def test_a_temporary_file_swapped_for_a_link_is_not_written_through(tmp_path, victim, monkeypatch):
    real = tempfile.mkstemp

    def swapped(*args, **kwargs):  # another user replaces the fresh temporary file with a link
        fd, tmp = real(*args, **kwargs)
        os.remove(tmp)
        os.symlink(victim, tmp)
        return fd, tmp
    monkeypatch.setattr(tempfile, "mkstemp", swapped)
    with pytest.raises(OSError, match="replaced"):
        write_atomic(str(tmp_path / "config.yaml"), "a: 1\n")
    assert victim.read_bytes() == SECRET and oct(os.stat(victim).st_mode & 0o777) == "0o600"
    assert not os.path.lexists(tmp_path / "config.yaml")


def test_metrics_rows_are_not_appended_through_a_link(tmp_path, victim):
    metrics = MetricsCSV(str(tmp_path / "metrics.csv"))
    os.remove(metrics.path)
    os.symlink(victim, metrics.path)
    with pytest.raises(OSError):
        metrics.append(epoch=1, step=10, loss="1.0", lr="0.1", seconds="1.0")
    assert victim.read_bytes() == SECRET
