"""Pushed archives are checked before anything is unpacked: each unsafe or broken archive is a 400 JSON error.

Archives are built by hand with tarfile/zipfile, the way an attacker would, not with mlgate's packer.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.registry_helpers import API, push, versioned_model

pytestmark = pytest.mark.anyio


def tar_gz(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


def model_members(model_dir: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [(member(p.name), p.read_bytes()) for p in sorted(model_dir.iterdir()) if p.is_file()]


def zip_bytes(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return buffer.getvalue()


def symlink_zip_entry(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


CASES: dict[str, Callable[[Path], bytes]] = {
    "absolute path": lambda d: tar_gz(*model_members(d), (member("/etc/cron.d/x"), b"boom")),
    "parent directory": lambda d: tar_gz(*model_members(d), (member("../../outside.txt"), b"boom")),
    "symlink out": lambda d: tar_gz(*model_members(d), (member("link", tarfile.SYMTYPE, "../../etc/passwd"), None)),
    "absolute symlink": lambda d: tar_gz(*model_members(d), (member("link", tarfile.SYMTYPE, "/etc/passwd"), None)),
    "hard link out": lambda d: tar_gz(*model_members(d), (member("hard", tarfile.LNKTYPE, "../secret"), None)),
    "device file": lambda d: tar_gz(*model_members(d), (member("dev", tarfile.CHRTYPE), None)),
    "fifo": lambda d: tar_gz(*model_members(d), (member("pipe", tarfile.FIFOTYPE), None)),
    "zip parent directory": lambda d: zip_bytes([("model.toml", (d / "model.toml").read_bytes()),
                                                 ("../evil.py", b"boom")]),
    "zip symlink": lambda d: zip_bytes([("model.toml", (d / "model.toml").read_bytes()),
                                        (symlink_zip_entry("link", "/etc/passwd"), b"/etc/passwd")]),
    "not an archive": lambda d: b"just some text, not an archive",
    "corrupt gzip": lambda d: b"\x1f\x8b" + b"\x00" * 64,
    "empty archive": lambda d: tar_gz(),
    "no manifest": lambda d: tar_gz((member("README"), b"hello")),
    "bad manifest": lambda d: tar_gz((member("model.toml"), b'name = "sum"\nruntime = 3\n')),
    "missing artifact": lambda d: tar_gz((member("model.toml"), (d / "model.toml").read_bytes())),
}

MODEL_PROBLEMS = {"no manifest", "bad manifest", "missing artifact"}
"""Cases that are safe archives of a broken model (invalid_input); the others are unsafe or no archive at all."""


@pytest.mark.parametrize("case", sorted(CASES))
async def test_unsafe_or_broken_archives_are_refused(app_client: Callable[..., Any], tmp_path: Path,
                                                     sqlite_url: str, case: str) -> None:
    model_dir = versioned_model(tmp_path, 1)
    (tmp_path / "repo").mkdir()
    async with app_client(tmp_path / "repo", database_url=sqlite_url) as client:
        response = await push(client, "sum", CASES[case](model_dir))
        assert response.status_code == 400, response.text
        body = response.json()
        expected = "invalid_input" if case in MODEL_PROBLEMS else "invalid_archive"
        assert (body["code"], body["field"]) == (expected, "file"), body
        assert (await client.get(f"{API}/models")).json()["models"] == []
    assert not (tmp_path.parent / "outside.txt").exists()


async def test_zip_and_nested_folder_and_links_inside_are_accepted(app_client: Callable[..., Any], tmp_path: Path,
                                                                   sqlite_url: str) -> None:
    model_dir = versioned_model(tmp_path, 4)
    (tmp_path / "repo").mkdir()
    zipped = zip_bytes([(f"sum/{p.name}", p.read_bytes()) for p in model_dir.iterdir() if p.is_file()])
    linked = tar_gz(*model_members(model_dir), (member("offset-link.txt", tarfile.SYMTYPE, "offset.txt"), None))
    async with app_client(tmp_path / "repo", database_url=sqlite_url) as client:
        assert (await push(client, "sum", zipped, filename="sum.zip")).status_code == 201
        assert (await push(client, "sum", linked)).status_code == 201
        response = await client.post("/v2/models/sum/infer", json={
            "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]})
        assert response.json()["outputs"][0]["data"] == [4.0]


async def test_upload_size_limit_and_bad_requests(app_client: Callable[..., Any], tmp_path: Path,
                                                  sqlite_url: str) -> None:
    (tmp_path / "repo").mkdir()
    model_dir = versioned_model(tmp_path, 1)
    async with app_client(tmp_path / "repo", database_url=sqlite_url, registry_max_upload_bytes=2000,
                          registry_max_unpacked_bytes=10_000) as client:
        big = tar_gz(*model_members(model_dir), (member("weights.bin"), os.urandom(4000)))
        too_large = await push(client, "sum", big)
        assert too_large.status_code == 413 and too_large.json()["code"] == "payload_too_large"
        assert "registry_max_upload_bytes" in too_large.json()["error"]
        bomb = tar_gz(*model_members(model_dir), (member("zeros.bin"), b"\x00" * 50_000))
        assert len(bomb) < 2000
        refused = await push(client, "sum", bomb)
        assert refused.status_code == 400 and "unpacks to more than" in refused.json()["error"]
        no_file = await client.post(f"{API}/models/sum/versions", data={"version": "1"})
        assert no_file.status_code == 400
        bad_name = await push(client, "bad..name", model_dir)  # refused by the security layer, before the body
        assert bad_name.status_code == 404 and bad_name.json()["code"] == "model_not_found"
        bad_version = await push(client, "sum", model_dir, version="../1")
        assert bad_version.status_code == 400 and bad_version.json()["field"] == "version"
        not_multipart = await client.post(f"{API}/models/sum/versions", content=b"xx",
                                          headers={"content-type": "multipart/form-data; boundary=zz"})
        assert not_multipart.status_code == 400
