"""The model repository: a folder whose sub-folders are model directories, each with a ``model.toml``.

Scanning reads manifests only; loading artifacts is the registry's job. A directory whose manifest is
missing or invalid is still reported (named after the directory), so that it shows as not ready with its
reason instead of vanishing.

``scan_repository`` also takes one model instead of a folder of them: a model directory (its own
``model.toml`` or MLflow ``MLmodel``), or a bare artifact file whose runtime its suffix names
(``ARTIFACT_RUNTIMES``: ``.joblib``/``.pkl``/``.skops`` for sklearn, ``.onnx`` for onnx, ``.keras`` for
keras, ``.pt2`` for torch, ``.ubj`` for xgboost), served under the file's name with the signature the runtime
reads from the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlgate.errors import ModelLoadError
from mlgate.model.manifest import MANIFEST_FILE, ModelManifest, read_manifest
from mlgate.model.mlflow import MLMODEL_FILE, read_mlmodel

__all__ = ["ARTIFACT_RUNTIMES", "ModelSource", "group_by_name", "rescan", "scan_repository"]

ARTIFACT_RUNTIMES = {".joblib": "sklearn", ".pkl": "sklearn", ".pickle": "sklearn", ".skops": "sklearn",
                     ".onnx": "onnx", ".keras": "keras", ".pt2": "torch", ".ubj": "xgboost"}
"""The runtime that serves a bare artifact file, by its suffix (``mlgate serve model.onnx``)."""


@dataclass(frozen=True, slots=True)
class ModelSource:
    """One model directory: its manifest, or the reason it could not be read."""

    directory: Path
    manifest: ModelManifest | None
    error: str | None = None

    @property
    def name(self) -> str:
        """The model's name: the manifest's, else the directory's."""
        return self.manifest.name if self.manifest else self.directory.name

    @property
    def version(self) -> str:
        """The model's version: the manifest's, else ``1``."""
        return self.manifest.version if self.manifest else "1"


def scan_repository(root: Path) -> list[ModelSource]:
    """Every model directory directly under ``root``, sorted by directory name.

    Hidden directories and directories without a ``model.toml`` (or an MLflow ``MLmodel``) file are
    skipped. A second directory declaring a (name, version) already seen is reported as an error.
    ``root`` may also be one model directory or one artifact file (see the module docstring).
    Raises FileNotFoundError when ``root`` does not exist, ValueError for a file no runtime serves.
    """
    if root.is_file():
        return [_artifact_source(root)]
    if not root.is_dir():
        raise FileNotFoundError(f"model repository {root} is not a directory")
    if (root / MANIFEST_FILE).is_file() or (root / MLMODEL_FILE).is_file():
        return [_read(root)]
    sources: list[ModelSource] = []
    seen: dict[tuple[str, str], Path] = {}
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        has_mlmodel = (directory / MLMODEL_FILE).exists()
        if not (directory / MANIFEST_FILE).exists() and not has_mlmodel:
            continue
        try:
            manifest = read_mlmodel(directory) if has_mlmodel and not (
                directory / MANIFEST_FILE).exists() else read_manifest(directory)
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


def _read(directory: Path) -> ModelSource:
    try:
        manifest = read_manifest(directory) if (directory / MANIFEST_FILE).exists() else read_mlmodel(directory)
    except ModelLoadError as exc:
        return ModelSource(directory, None, exc.message)
    return ModelSource(directory, manifest)


def _artifact_source(path: Path) -> ModelSource:
    runtime = ARTIFACT_RUNTIMES.get(path.suffix.lower())
    if runtime is None:
        known = ", ".join(sorted(ARTIFACT_RUNTIMES))
        raise ValueError(f"{path.name}: no runtime serves {path.suffix or 'files without a suffix'} files "
                         f"(artifacts: {known}; or a model directory with a model.toml or an MLflow MLmodel)")
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem).lstrip("._-") or "model"
    manifest = ModelManifest(name=name[:128], runtime=runtime, artifact=path.name)
    return ModelSource(path.parent, manifest)


def rescan(source: ModelSource) -> ModelSource:
    """``source`` read again from its directory (the V2 repository extension's load)."""
    if not (source.directory / MANIFEST_FILE).exists() and not (source.directory / MLMODEL_FILE).exists() and (
            source.manifest is not None):
        return source  # a bare artifact: its manifest was made from the file's name
    try:
        manifest = read_manifest(source.directory) if (source.directory / MANIFEST_FILE).exists() else (
            read_mlmodel(source.directory))
    except ModelLoadError as exc:
        return ModelSource(source.directory, source.manifest, exc.message)
    return ModelSource(source.directory, manifest)


def group_by_name(sources: list[ModelSource]) -> dict[str, list[ModelSource]]:
    """Sources by model name (a name may have several versions, each in its own directory)."""
    grouped: dict[str, list[ModelSource]] = {}
    for source in sources:
        grouped.setdefault(source.name, []).append(source)
    return grouped
