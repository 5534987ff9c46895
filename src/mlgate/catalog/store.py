"""The artifact store: where pushed model versions live, as the archive that was pushed.

A local folder by default (``data_dir/artifacts``); any fsspec URL as an option (``s3://bucket/prefix``
with s3fs installed, ``gs://``, ``memory://`` for tests). Layout: ``<root>/<model>/<version>/<sha256>.<ext>``.
Every replica unpacks what it serves into its own cache folder, ``data_dir/cache/<model>/<version>-<sha>``,
after checking the archive's SHA-256 against the one recorded at push.

fsspec is synchronous: call these methods off the event loop (``anyio.to_thread.run_sync``).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from mlgate.errors import ModelLoadError
from mlgate.model.archives import check_archive, extract_archive

__all__ = ["ArtifactStore", "sha256_of"]

CHUNK = 1 << 20


def sha256_of(fh: BinaryIO) -> str:
    """SHA-256 (hex) of a file object's content from its start; it is rewound afterwards."""
    fh.seek(0)
    digest = hashlib.sha256()
    while chunk := fh.read(CHUNK):
        digest.update(chunk)
    fh.seek(0)
    return digest.hexdigest()


class ArtifactStore:
    """Archives of model versions under ``url`` (a folder or an fsspec URL), unpacked into ``cache_dir``."""

    def __init__(self, url: str, cache_dir: Path, *, max_unpacked_bytes: int) -> None:
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        if isinstance(self.fs, LocalFileSystem):
            Path(self.root).mkdir(parents=True, exist_ok=True)
        self.cache_dir = cache_dir
        self.max_unpacked_bytes = max_unpacked_bytes

    def _path(self, name: str, version: str, checksum: str, fmt: str) -> str:
        return f"{self.root}/{name}/{version}/{checksum}.{'tar.gz' if fmt == 'tar' else 'zip'}"

    def put(self, name: str, version: str, fh: BinaryIO, checksum: str, fmt: str) -> str:
        """Copy the archive into the store; returns its URI (an fsspec URL or a local path)."""
        path = self._path(name, version, checksum, fmt)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fh.seek(0)
        with self.fs.open(path, "wb") as out:
            shutil.copyfileobj(fh, out, CHUNK)
        return self.fs.unstrip_protocol(path) if not isinstance(self.fs, LocalFileSystem) else path

    def put_blob(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``<root>/<key>`` (``key``: ``_<kind>/<name>``, never a model's folder); its URI."""
        path = f"{self.root}/{key}"
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(path, "wb") as out:
            out.write(data)
        return self.fs.unstrip_protocol(path) if not isinstance(self.fs, LocalFileSystem) else path

    @staticmethod
    def open_blob(uri: str) -> BinaryIO:
        """A file object reading what ``put_blob`` wrote (or an archive); FileNotFoundError when it is gone."""
        fs, path = fsspec.core.url_to_fs(uri)
        fh: BinaryIO = fs.open(path, "rb")
        return fh

    def delete(self, uri: str) -> None:
        """Remove an archive or blob (missing is fine)."""
        fs, path = fsspec.core.url_to_fs(uri)
        if fs.exists(path):
            fs.rm(path)

    def materialize(self, name: str, version: str, uri: str, checksum: str) -> Path:
        """The unpacked model directory of a version, fetched and checked on first use.

        Raises ModelLoadError when the archive is missing or its SHA-256 is not the recorded one.
        """
        target = self.cache_dir / name / f"{version}-{checksum[:16]}"
        if (target / ".complete").exists():
            return target
        fs, path = fsspec.core.url_to_fs(uri)
        with tempfile.TemporaryFile() as tmp:
            try:
                with fs.open(path, "rb") as src:
                    shutil.copyfileobj(src, tmp, CHUNK)
            except FileNotFoundError as exc:
                raise ModelLoadError(f"artifact {uri} is missing from the artifact store") from exc
            actual = sha256_of(tmp)
            if actual != checksum:
                raise ModelLoadError(f"artifact {uri} has SHA-256 {actual}, but {checksum} was recorded at push")
            info = check_archive(tmp, max_unpacked_bytes=self.max_unpacked_bytes)
            staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self._ensure(target.parent)))
            try:
                extract_archive(tmp, staging, info)
                (staging / ".complete").touch()
                if target.exists() and not (target / ".complete").exists():
                    shutil.rmtree(target)  # a half-written leftover of a crash
                staging.rename(target)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
                if not (target / ".complete").exists():
                    raise
                # Another process sharing this cache unpacked the same archive first: use theirs.
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return target

    @staticmethod
    def _ensure(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
