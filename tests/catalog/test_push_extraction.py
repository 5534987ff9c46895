"""Archives that pass the member-by-member check but fail while being unpacked are a 400, never a 500.

Built by hand the way an attacker would: a symbolic link that leaves the directory only through another link
(each is inside on its own), and zip members whose real size differs from the size their header declares.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.catalog.test_push_archives import member, model_members, tar_gz, zip_bytes
from tests.registry_helpers import API, push, versioned_model

pytestmark = pytest.mark.anyio


def _zip_with_lying_size(model_dir: Path, real: bytes, declared: int) -> bytes:
    """A zip of the model whose ``weights.bin`` holds ``real`` but whose headers say ``declared`` bytes."""
    data = zip_bytes([*((p.name, p.read_bytes()) for p in sorted(model_dir.iterdir()) if p.is_file()),
                      ("weights.bin", real)])
    size = len(real).to_bytes(4, "little")
    crc = zlib.crc32(real).to_bytes(4, "little")
    # Patch the uncompressed size in the local header and in the central directory (stored, not deflated).
    patched = data.replace(crc + size + size, crc + size + declared.to_bytes(4, "little"))
    assert patched != data
    return patched


CASES: dict[str, Callable[[Path], bytes]] = {
    # 'here' -> '.', then 'up' -> 'here/..': each link is inside by its own path, together they leave.
    "link through a link": lambda d: tar_gz(*model_members(d), (member("here", tarfile.SYMTYPE, "."), None),
                                           (member("up", tarfile.SYMTYPE, "here/.."), None)),
    "zip member larger than declared": lambda d: _zip_with_lying_size(d, b"x" * 5000, 10),
    "zip member smaller than declared": lambda d: _zip_with_lying_size(d, b"x" * 10, 5000),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_archives_failing_during_extraction(app_client: Callable[..., Any], tmp_path: Path,
                                                  sqlite_url: str, case: str) -> None:
    model_dir = versioned_model(tmp_path, 1)
    (tmp_path / "repo").mkdir()
    async with app_client(tmp_path / "repo", database_url=sqlite_url) as client:
        response = await push(client, "sum", CASES[case](model_dir))
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "invalid_archive" and body["field"] == "file", body
        assert (await client.get(f"{API}/models")).json()["models"] == []
        ok = await push(client, "sum", model_dir)
        assert ok.status_code == 201, ok.text


def test_lying_zip_really_lies(tmp_path: Path) -> None:
    import io

    data = _zip_with_lying_size(versioned_model(tmp_path, 1), b"x" * 5000, 10)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.getinfo("weights.bin").file_size == 10
