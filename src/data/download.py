"""Fetch, verify and safely unpack the official CIFAR-10 binary archive.

    python -m src.data.download DIR     # -> DIR/cifar-10-batches-bin

The archive is streamed to a temporary file (at most `MAX_ARCHIVE_BYTES`, so an endless or huge
answer cannot fill the disk) while its MD5 (and, when given, SHA-256) is computed, checked against
caps on its unpacked size and member count (a small archive must not fill the disk), unpacked into a
temporary folder next to the target, checked, and only then renamed into place. An interrupted
or corrupted download therefore never leaves a half dataset under the final name.
"""
import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from http.client import HTTPException

from src.data.cifar10_files import EVAL_FILES, TRAIN_FILES, resolve_split_files
from src.utils.config import DEFAULT_CONFIG, read_yaml
from src.utils.errors import UserError, run_cli
from src.utils.safe_text import redact_url

ARCHIVE_FOLDER = "cifar-10-batches-bin"
CHUNK_BYTES = 1 << 20
# The official archive unpacks to 9 members (a folder, 6 batches of 30,730,000 bytes, 2 small text
# files), about 185 MB; the caps leave a margin and refuse anything far beyond that.
MAX_MEMBERS = 64
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
ARCHIVE_BYTES = 170_052_171  # cifar-10-binary.tar.gz
MAX_ARCHIVE_BYTES = 2 * ARCHIVE_BYTES  # the download stops beyond this


def _fetch(url: str, destination: str, timeout: float) -> tuple[str, str]:
    """Stream `url` into `destination`; return the (MD5, SHA-256) hex digests of what was received."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
            expected = int(response.headers.get("Content-Length") or 0)
            received, next_report = 0, 0.1
            while chunk := response.read(CHUNK_BYTES):
                received += len(chunk)
                if max(received, expected) > MAX_ARCHIVE_BYTES:
                    raise UserError(f"the download from {redact_url(url)} is larger than "
                                    f"{MAX_ARCHIVE_BYTES / 1e6:.0f} MB (cifar-10-binary.tar.gz is "
                                    f"{ARCHIVE_BYTES / 1e6:.0f} MB); stopped and deleted. Check --download_url")
                out.write(chunk)
                md5.update(chunk)
                sha256.update(chunk)
                if expected and received / expected >= next_report:
                    print(f"  downloaded {received / 1e6:.1f} of {expected / 1e6:.1f} MB", flush=True)
                    next_report += 0.1
    except (urllib.error.URLError, HTTPException, OSError, ValueError) as err:
        raise UserError(f"download of {redact_url(url)} failed ({redact_url(str(err))}); check the network and run "
                        "again, or unpack cifar-10-binary.tar.gz yourself (see README \"Dataset\")") from err
    if expected and received != expected:
        raise UserError(f"download of {redact_url(url)} was interrupted after {received} of {expected} bytes; "
                        "run again")
    return md5.hexdigest(), sha256.hexdigest()


def _checked_members(archive: tarfile.TarFile, root: str) -> list[tarfile.TarInfo]:
    """Every member, refusing links, devices, any path that would land outside `root`, and more members
    or bytes than CIFAR-10 has (read header by header, so a huge member list is never held)."""
    members, total = [], 0
    root = os.path.realpath(root)
    for member in archive:
        if len(members) >= MAX_MEMBERS:
            raise UserError(f"the archive holds more than {MAX_MEMBERS} members (CIFAR-10 has 9); refusing it")
        total += member.size
        if total > MAX_UNPACKED_BYTES:
            raise UserError(f"the archive unpacks to more than {MAX_UNPACKED_BYTES // 2 ** 20} MiB (CIFAR-10 is "
                            "about 177 MiB); refusing it")
        if not (member.isfile() or member.isdir()) or member.issparse():
            raise UserError(f"the archive holds {member.name!r}, which is not a plain file or folder; refusing it")
        target = os.path.realpath(os.path.join(root, member.name))
        if os.path.isabs(member.name) or os.path.commonpath([root, target]) != root:
            raise UserError(f"the archive holds {member.name!r}, which points outside the target folder; "
                            "refusing it")
        members.append(member)
    return members


def _unpack(archive_path: str, destination: str) -> None:
    try:
        with tarfile.open(archive_path, "r:*") as archive:
            members = _checked_members(archive, destination)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second, standard safety net
                archive.extractall(destination, members=members, filter="data")
            else:
                archive.extractall(destination, members=members)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise UserError(f"cannot unpack the downloaded archive: {err}") from err


def download_cifar10(target_dir: str, url: str, md5: str, timeout: float = 60.0, sha256: str | None = None) -> str:
    """Make `target_dir/cifar-10-batches-bin` from the archive at `url`; return that folder.

    Args:
        target_dir: where the folder is created (made if missing).
        url: the archive's address (the official cifar-10-binary.tar.gz by default config).
        md5: its expected MD5; any other content is refused and deleted.
        sha256: its expected SHA-256 too, when given (MD5 alone no longer resists a forger).
        timeout: seconds to wait for the server at a time.
    """
    os.makedirs(target_dir, exist_ok=True)
    final = os.path.join(target_dir, ARCHIVE_FOLDER)
    if os.path.isdir(final):
        return final
    fd, archive_path = tempfile.mkstemp(prefix=".download-", suffix=".tar.gz", dir=target_dir)
    os.close(fd)
    staging = tempfile.mkdtemp(prefix=".extract-", dir=target_dir)
    try:
        print(f"downloading {redact_url(url)} into {target_dir}", flush=True)
        digest, sha_digest = _fetch(url, archive_path, timeout)
        if digest != md5.lower():
            raise UserError(f"the file downloaded from {redact_url(url)} has MD5 {digest}, expected {md5}; it was "
                            "deleted. Run again, or check --download_url and --download_md5")
        if sha256 and sha_digest != sha256.lower():
            raise UserError(f"the file downloaded from {redact_url(url)} has SHA-256 {sha_digest}, expected "
                            f"{sha256}; it was deleted. Run again, or check --download_url and --download_sha256")
        _unpack(archive_path, staging)
        unpacked = os.path.join(staging, ARCHIVE_FOLDER)
        missing = [n for n in TRAIN_FILES + EVAL_FILES if not os.path.isfile(os.path.join(unpacked, n))]
        if missing:
            raise UserError(f"the archive from {redact_url(url)} has no {ARCHIVE_FOLDER}/{missing[0]}; "
                            "is it cifar-10-binary.tar.gz (the binary version)?")
        try:
            os.rename(unpacked, final)
        except OSError:
            if not os.path.isdir(final):  # otherwise another process finished first: keep its copy
                raise
    finally:
        os.remove(archive_path)
        shutil.rmtree(staging, ignore_errors=True)
    print(f"CIFAR-10 is in {final}", file=sys.stdout, flush=True)
    return final


def download_for_training(data_path: str, url: str, md5: str, sha256: str | None = None) -> str:
    """For `--download`: fetch CIFAR-10 unless `data_path` already holds it; return a status line.

    The archive unpacks to `cifar-10-batches-bin/`, so a `data_path` ending in that name is
    filled through its parent, and any other `data_path` gets the folder inside it.
    """
    try:
        resolve_split_files(data_path, "train")
        return f"--download: {data_path} already holds the CIFAR-10 training files; not downloading"
    except UserError:
        pass
    absolute = os.path.abspath(data_path)
    target = os.path.dirname(absolute) if os.path.basename(absolute) == ARCHIVE_FOLDER else absolute
    return f"--download: CIFAR-10 unpacked into {download_cifar10(target, url, md5, sha256=sha256)}"


def main(argv: list[str] | None = None) -> int:
    """`python -m src.data.download DIR`: fetch the official archive into DIR/cifar-10-batches-bin."""
    defaults = read_yaml(DEFAULT_CONFIG)
    parser = argparse.ArgumentParser(prog="python -m src.data.download", description=main.__doc__)
    parser.add_argument("dir", help="folder that receives cifar-10-batches-bin/")
    parser.add_argument("--url", default=defaults["download_url"], help="default: %(default)s")
    parser.add_argument("--md5", default=defaults["download_md5"], help="default: %(default)s")
    parser.add_argument("--sha256", default=defaults["download_sha256"], help="also check this SHA-256")
    args = parser.parse_args(argv)
    download_cifar10(args.dir, args.url, args.md5, sha256=args.sha256)
    return 0


if __name__ == "__main__":
    run_cli(main)
