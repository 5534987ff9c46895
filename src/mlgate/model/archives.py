"""Model directory archives (tar.gz or zip): packing, and checking before anything is unpacked.

An archive is checked member by member before a single byte is written: no absolute paths, no ``..``, no
device files or FIFOs, no links that point out of the directory (hard links and symbolic links may only
point at a member inside), at most ``max_members`` members and ``max_unpacked_bytes`` of content in total
(zip bombs). Each refusal is an InvalidArchive (400) naming the member. Extraction then writes only the
checked members, with tarfile's ``data`` filter as a second guard.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from mlgate.errors import InvalidArchive

__all__ = ["ArchiveInfo", "check_archive", "extract_archive", "pack_directory", "pack_to_bytes"]

Format = Literal["tar", "zip"]
MAX_MEMBERS = 10_000


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    """What a checked archive holds: its format, the member files (POSIX paths), and their total size."""

    format: Format
    files: tuple[str, ...]
    unpacked_bytes: int
    prefix: str
    """A single top-level folder every member lives in ('' if none); it is stripped when unpacking."""


def _format_of(fh: BinaryIO) -> Format:
    fh.seek(0)
    head = fh.read(4)
    fh.seek(0)
    if head[:2] == b"\x1f\x8b":
        return "tar"
    if head == b"PK\x03\x04" or head == b"PK\x05\x06":
        return "zip"
    raise InvalidArchive("the upload is neither a tar.gz nor a zip archive", field="file")


def _safe_path(name: str) -> PurePosixPath:
    if "\\" in name or "\x00" in name:
        raise InvalidArchive(f"member {name!r}: backslashes and NUL are not allowed in paths", field="file")
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise InvalidArchive(f"member {name!r}: absolute paths are not allowed", field="file")
    if ".." in path.parts:
        raise InvalidArchive(f"member {name!r}: '..' is not allowed in paths", field="file")
    return path


def _link_inside(member: str, target: str, *, symbolic: bool) -> None:
    if target.startswith("/") or "\\" in target:
        raise InvalidArchive(f"member {member!r}: link to {target!r} points out of the model directory",
                             field="file")
    base = PurePosixPath(member).parent if symbolic else PurePosixPath()
    depth = 0
    for part in (base / target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise InvalidArchive(f"member {member!r}: link to {target!r} points out of the model directory",
                                 field="file")


def _common_prefix(files: list[PurePosixPath]) -> str:
    tops = {p.parts[0] for p in files if p.parts}
    if len(tops) == 1 and all(len(p.parts) > 1 for p in files):
        return tops.pop()
    return ""


def check_archive(fh: BinaryIO, *, max_unpacked_bytes: int, max_members: int = MAX_MEMBERS) -> ArchiveInfo:
    """Check an archive without unpacking it (see the module docstring). ``fh`` is rewound afterwards.

    Raises InvalidArchive (400) for every refusal, including a corrupt archive.
    """
    fmt = _format_of(fh)
    files: list[PurePosixPath] = []
    total = 0
    try:
        if fmt == "tar":
            with tarfile.open(fileobj=fh, mode="r:gz") as tar:
                for count, info in enumerate(tar, start=1):
                    if count > max_members:
                        raise InvalidArchive(f"the archive has more than {max_members} members", field="file")
                    path = _safe_path(info.name)
                    if info.issym() or info.islnk():
                        _link_inside(info.name, info.linkname, symbolic=info.issym())
                    elif not (info.isfile() or info.isdir()):
                        raise InvalidArchive(f"member {info.name!r}: device files, FIFOs and other special "
                                             "files are not allowed", field="file")
                    if info.isfile():
                        total += info.size
                        files.append(path)
                    if total > max_unpacked_bytes:
                        raise InvalidArchive(f"the archive unpacks to more than {max_unpacked_bytes} bytes "
                                             "(setting registry_max_unpacked_bytes)", field="file")
        else:
            with zipfile.ZipFile(fh) as zf:
                infos = zf.infolist()
                if len(infos) > max_members:
                    raise InvalidArchive(f"the archive has more than {max_members} members", field="file")
                for zinfo in infos:
                    path = _safe_path(zinfo.filename)
                    mode = zinfo.external_attr >> 16
                    if stat.S_ISLNK(mode):
                        raise InvalidArchive(f"member {zinfo.filename!r}: links are not supported in zip "
                                             "archives; use tar.gz", field="file")
                    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no type recorded
                        raise InvalidArchive(f"member {zinfo.filename!r}: device files, FIFOs and other "
                                             "special files are not allowed", field="file")
                    if not zinfo.is_dir():
                        total += zinfo.file_size
                        files.append(path)
                    if total > max_unpacked_bytes:
                        raise InvalidArchive(f"the archive unpacks to more than {max_unpacked_bytes} bytes "
                                             "(setting registry_max_unpacked_bytes)", field="file")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise InvalidArchive(f"the archive is corrupt: {exc}", field="file") from exc
    finally:
        fh.seek(0)
    if not files:
        raise InvalidArchive("the archive holds no files", field="file")
    return ArchiveInfo(fmt, tuple(str(p) for p in files), total, _common_prefix(files))


def extract_archive(fh: BinaryIO, dest: Path, info: ArchiveInfo) -> None:
    """Unpack a checked archive into ``dest`` (created), dropping ``info.prefix``.

    Raises InvalidArchive (400) for a member that fails while being unpacked: a link that leaves the
    directory through another link (tarfile's ``data`` filter), a corrupt member, or a zip member whose
    content is not the size its header declares (the size ``check_archive`` counted). ``dest`` may then
    hold part of the archive; the caller removes it.
    """
    dest.mkdir(parents=True, exist_ok=True)
    strip = len(PurePosixPath(info.prefix).parts) if info.prefix else 0
    fh.seek(0)
    try:
        if info.format == "tar":
            _extract_tar(fh, dest, strip)
        else:
            _extract_zip(fh, dest, strip)
    except tarfile.FilterError as exc:
        raise InvalidArchive(f"member {exc.tarinfo.name!r}: {exc}", field="file") from exc
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise InvalidArchive(f"the archive could not be unpacked: {exc}", field="file") from exc


def _extract_tar(fh: BinaryIO, dest: Path, strip: int) -> None:
    with tarfile.open(fileobj=fh, mode="r:gz") as tar:
        members = []
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts[strip:]
            if not parts:
                continue
            member.name = str(PurePosixPath(*parts))
            if member.islnk():
                link_parts = PurePosixPath(member.linkname).parts[strip:]
                member.linkname = str(PurePosixPath(*link_parts))
            members.append(member)
        tar.extractall(dest, members=members, filter="data")


def _extract_zip(fh: BinaryIO, dest: Path, strip: int) -> None:
    with zipfile.ZipFile(fh) as zf:
        for zinfo in zf.infolist():
            parts = PurePosixPath(zinfo.filename).parts[strip:]
            if not parts or zinfo.is_dir():
                continue
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(zinfo) as src, target.open("wb") as out:
                # zipfile stops at the declared size (a larger member then fails its CRC) but returns a
                # shorter member without complaint: count what arrives.
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    out.write(chunk)
            if written != zinfo.file_size:
                raise InvalidArchive(f"member {zinfo.filename!r}: holds {written} bytes but its header declares "
                                     f"{zinfo.file_size}", field="file")


def pack_directory(directory: Path, out: BinaryIO) -> None:
    """Write ``directory``'s files into ``out`` as a tar.gz (paths relative to it; links kept as links)."""
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for root, dirs, names in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            for name in sorted(names):
                path = Path(root) / name
                tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)


def pack_to_bytes(directory: Path) -> bytes:
    """``pack_directory`` into memory (small directories, tests)."""
    buffer = io.BytesIO()
    pack_directory(directory, buffer)
    return buffer.getvalue()
