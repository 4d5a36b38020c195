"""--download against a local HTTP server: good archive, bad checksum, interrupted transfer, unsafe archives."""
import hashlib
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading

import pytest

from tests.helpers.cifar_data import write_cifar_layout
from src.data.cifar10_files import resolve_split_files
from src.data.download import download_for_training
from src.data.download import download_cifar10
from src.data import download
from src.utils.errors import UserError
from tests.helpers import REPO_ROOT



def _archive_bytes(tmp_path, extra=None) -> bytes:
    """A small cifar-10-binary.tar.gz look-alike; `extra(tar)` may add hostile members."""
    folder = write_cifar_layout(str(tmp_path / "source"), per_train_file=2, test_count=3)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname="cifar-10-batches-bin")
        if extra:
            extra(archive)
    return buffer.getvalue()


class _Server:
    """Serves `payload` at /cifar.tar.gz; with `cut`, sends only that many bytes of it, then hangs up."""

    def __init__(self, payload: bytes, cut: int | None = None):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[:cut] if cut is not None else payload)
                self.wfile.flush()
                outer.requests += 1

            def log_message(self, *args):
                pass

        self.requests = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cifar.tar.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(payload, cut=None):
        servers.append(_Server(payload, cut))
        return servers[-1]
    yield start
    for server in servers:
        server.close()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_download_verifies_and_unpacks(tmp_path, serve):
    payload = _archive_bytes(tmp_path)
    server = serve(payload)
    target = tmp_path / "data"
    folder = download_cifar10(str(target), server.url, _md5(payload))
    assert folder == str(target / "cifar-10-batches-bin")
    assert len(resolve_split_files(folder, "train")) == 5
    assert sorted(os.listdir(target)) == ["cifar-10-batches-bin"]  # no temp files left
    # A second call finds the data and does not download again.
    download_cifar10(str(target), server.url, _md5(payload))
    assert server.requests == 1


def test_checksums_are_compared_whatever_their_case(tmp_path, serve):
    payload = _archive_bytes(tmp_path)
    server = serve(payload)
    sha256 = hashlib.sha256(payload).hexdigest().upper()
    folder = download_cifar10(str(tmp_path / "data"), server.url, _md5(payload).upper(), sha256=sha256)
    assert len(resolve_split_files(folder, "train")) == 5


def test_download_for_training_fills_the_data_path(tmp_path, serve):
    payload = _archive_bytes(tmp_path)
    server = serve(payload)
    data_path = str(tmp_path / "d" / "cifar-10-batches-bin")
    assert "unpacked" in download_for_training(data_path, server.url, _md5(payload))
    assert resolve_split_files(data_path, "eval")
    assert "already holds" in download_for_training(data_path, server.url, _md5(payload))


def test_bad_checksum_keeps_nothing(tmp_path, serve):
    server = serve(_archive_bytes(tmp_path))
    target = tmp_path / "data"
    with pytest.raises(UserError, match="has MD5 .*, expected 0123456789abcdef0123456789abcdef; it was deleted"):
        download_cifar10(str(target), server.url, "0123456789abcdef0123456789abcdef")
    assert os.listdir(target) == []


def test_interrupted_transfer_keeps_nothing(tmp_path, serve):
    payload = _archive_bytes(tmp_path)
    server = serve(payload, cut=len(payload) // 2)
    target = tmp_path / "data"
    with pytest.raises(UserError, match="interrupted|failed"):
        download_cifar10(str(target), server.url, _md5(payload))
    assert os.listdir(target) == []


def _add_escape(archive):
    info = tarfile.TarInfo("../escaped.txt")
    info.size = 3
    archive.addfile(info, io.BytesIO(b"bad"))


def _add_link(archive):
    info = tarfile.TarInfo("cifar-10-batches-bin/link")
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    archive.addfile(info)


@pytest.mark.parametrize("extra, match", [(_add_escape, "points outside"), (_add_link, "not a plain file")])
def test_unsafe_archives_are_refused(tmp_path, serve, extra, match):
    payload = _archive_bytes(tmp_path, extra)
    server = serve(payload)
    target = tmp_path / "data"
    with pytest.raises(UserError, match=match):
        download_cifar10(str(target), server.url, _md5(payload))
    assert os.listdir(target) == []
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.slow
def test_command_line_download(tmp_path, serve):
    payload = _archive_bytes(tmp_path)
    server = serve(payload)
    ok = subprocess.run([sys.executable, "-m", "src.data.download", str(tmp_path / "cli"), "--url", server.url,
                         "--md5", _md5(payload)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "cli" / "cifar-10-batches-bin" / "test_batch.bin").is_file()
    bad = subprocess.run([sys.executable, "-m", "src.data.download", str(tmp_path / "bad"), "--url", server.url,
                          "--md5", "0" * 32], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def _add_members(count: int):
    def extra(archive):
        for index in range(count):
            info = tarfile.TarInfo(f"cifar-10-batches-bin/extra_{index}.txt")
            info.size = 1
            archive.addfile(info, io.BytesIO(b"x"))
    return extra


def test_an_archive_with_too_many_members_is_refused(tmp_path, serve):
    payload = _archive_bytes(tmp_path, _add_members(100))
    server = serve(payload)
    target = tmp_path / "data"
    with pytest.raises(UserError, match="more than 64 members"):
        download_cifar10(str(target), server.url, _md5(payload))
    assert os.listdir(target) == []


def test_an_archive_that_unpacks_beyond_the_size_cap_is_refused(tmp_path, serve, monkeypatch):
    # A zero-filled member compresses to almost nothing; the cap is lowered so the test stays small.
    monkeypatch.setattr(download, "MAX_UNPACKED_BYTES", 4 * 1024 * 1024)

    def add_zeros(archive):
        info = tarfile.TarInfo("cifar-10-batches-bin/zeros.bin")
        info.size = 5 * 1024 * 1024
        archive.addfile(info, io.BytesIO(bytes(info.size)))
    payload = _archive_bytes(tmp_path, add_zeros)
    assert len(payload) < 100_000
    server = serve(payload)
    target = tmp_path / "data"
    with pytest.raises(UserError, match="unpacks to more than 4 MiB"):
        download_cifar10(str(target), server.url, _md5(payload))
    assert os.listdir(target) == []


class _Unannounced:
    """A response without a Content-Length that streams zeros (as `file:///dev/zero` does), up to `size`."""

    def __init__(self, size: int):
        self.headers, self.left = {}, size

    def read(self, count: int) -> bytes:
        count = min(count, self.left)
        self.left -= count
        return bytes(count)

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        return False


def test_an_endless_download_stops_at_the_cap_and_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "MAX_ARCHIVE_BYTES", 3 * 1024 * 1024)  # the real cap is 340 MB
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda url, timeout: _Unannounced(30 * 1024 * 1024))
    target = tmp_path / "data"
    with pytest.raises(UserError, match="from file:///dev/zero is larger than 3 MB .*stopped and deleted"):
        download_cifar10(str(target), "file:///dev/zero", "0" * 32)
    assert os.listdir(target) == []


def test_a_download_announced_beyond_the_cap_is_refused_before_it_is_written(tmp_path, serve, monkeypatch):
    payload = bytes(200_000)
    monkeypatch.setattr(download, "MAX_ARCHIVE_BYTES", 100_000)
    monkeypatch.setattr(download, "CHUNK_BYTES", 1 << 16)
    written = []
    real_open = open

    def recording_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if "w" in mode:
            write = handle.write
            handle.write = lambda data: written.append(len(data)) or write(data)
        return handle
    monkeypatch.setattr("builtins.open", recording_open)
    with pytest.raises(UserError, match="larger than 0 MB"):
        download_cifar10(str(tmp_path / "data"), serve(payload).url, _md5(payload))
    assert written == []  # the Content-Length said too much: not a byte was kept


def test_the_real_caps_fit_cifar10_with_a_margin():
    assert download.ARCHIVE_BYTES * 1.5 < download.MAX_ARCHIVE_BYTES <= download.ARCHIVE_BYTES * 3
    official_bytes = 6 * 30_730_000 + 100_000  # six batches, batches.meta.txt and readme.html
    assert official_bytes * 1.2 < download.MAX_UNPACKED_BYTES < official_bytes * 2
    assert 9 * 2 < download.MAX_MEMBERS < 1000


def test_a_sha256_is_checked_as_well_as_the_md5(tmp_path, serve):
    payload = _archive_bytes(tmp_path)
    server = serve(payload)
    with pytest.raises(UserError, match="has SHA-256 .*, expected " + "0" * 64):
        download_cifar10(str(tmp_path / "bad"), server.url, _md5(payload), sha256="0" * 64)
    assert os.listdir(tmp_path / "bad") == []
    good = download_cifar10(str(tmp_path / "good"), server.url, _md5(payload),
                            sha256=hashlib.sha256(payload).hexdigest())
    assert os.path.isfile(os.path.join(good, "test_batch.bin"))
