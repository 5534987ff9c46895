"""The model repository: a folder whose sub-folders are model directories, each with a ``model.toml``.

Scanning reads manifests only; loading artifacts is the registry's job. A directory whose manifest is
missing or invalid is still reported (named after the directory), so that it shows as not ready with its
reason instead of vanishing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlgate.errors import ModelLoadError
from mlgate.manifest import MANIFEST_FILE, ModelManifest, read_manifest

__all__ = ["ModelSource", "scan_repository"]


@dataclass(frozen=True, slots=True)
class ModelSource:
    """One model directory: its manifest, or the reason it could not be read."""

    directory: Path
    manifest: ModelManifest | None
    error: str | None = None

    @property
    def name(self) -> str:
        return self.manifest.name if self.manifest else self.directory.name

    @property
    def version(self) -> str:
        return self.manifest.version if self.manifest else "1"


def scan_repository(root: Path) -> list[ModelSource]:
    """Every model directory directly under ``root``, sorted by directory name.

    Hidden directories and directories without a ``model.toml`` file are skipped. A second directory
    declaring a (name, version) already seen is reported as an error. Raises FileNotFoundError when
    ``root`` is not a directory.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"model repository {root} is not a directory")
    sources: list[ModelSource] = []
    seen: dict[tuple[str, str], Path] = {}
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (directory / MANIFEST_FILE).exists():
            continue
        try:
            manifest = read_manifest(directory)
        except ModelLoadError as exc:
            sources.append(ModelSource(directory, None, exc.message))
            continue
        key = (manifest.name, manifest.version)
        if key in seen:
            error = f"model '{key[0]}' version '{key[1]}' is already served from {seen[key]}"
            sources.append(ModelSource(directory, manifest, error))
            continue
        seen[key] = directory
        sources.append(ModelSource(directory, manifest))
    return sources
