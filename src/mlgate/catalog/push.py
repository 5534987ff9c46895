"""Pushing a model version: check the uploaded archive, read its manifest, store it, record it.

The archive (tar.gz or zip of a model directory) is checked before anything is unpacked
(``mlgate.model.archives``), then unpacked into a scratch folder only to read and validate its manifest:
``model.toml``, or an MLflow ``MLmodel`` file (``mlgate.model.mlflow``). The version is the one asked
for, else the manifest's ``version`` when it sets one, else one more than the highest numeric version.
Versions are immutable: pushing an existing one is VersionExists (409). A ``model.toml`` must name the model it
is pushed as; an archive with a second manifest (``model.toml`` or ``MLmodel`` below the top, or both at the
top) is refused.

``check_file`` (optional) sees the path of every file in the archive once it is checked and before anything
is unpacked, then the artifact as ``loaded_as`` names it, before anything is stored or recorded; the REST API
passes ``Policy.check_artifact``, so an archive holding a format that runs code when loaded (pickle, joblib,
``.py``...) is refused (403) before the version exists.
"""

from __future__ import annotations

import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import anyio

from mlgate.catalog.store import ArtifactStore, sha256_of
from mlgate.db.base import utcnow
from mlgate.db.queries.catalog import Catalog, VersionInfo
from mlgate.db.tables.audit import Actor
from mlgate.errors import InvalidInput, ModelLoadError, VersionExists
from mlgate.model.archives import check_archive, extract_archive
from mlgate.model.manifest import MANIFEST_FILE, ModelManifest, is_valid_name, read_manifest
from mlgate.model.mlflow import MLMODEL_FILE, read_mlmodel
from mlgate.runtimes import RUNTIMES
from mlgate.runtimes.keras import unsafe_reason

__all__ = ["loaded_as", "push_archive", "read_model_dir"]


def read_model_dir(directory: Path) -> tuple[ModelManifest, bool]:
    """The manifest of a model directory and whether it names its version explicitly.

    ``model.toml`` first, else MLflow's ``MLmodel``. Raises ModelLoadError naming what is wrong, among it a
    ``.keras`` file storing Python code (a ``Lambda`` layer's ``lambda``) without ``safe_mode = false``.
    """
    if (directory / MANIFEST_FILE).is_file() and (directory / MLMODEL_FILE).is_file():
        raise ModelLoadError(f"the model directory has both a {MANIFEST_FILE} and an MLflow {MLMODEL_FILE} file; "
                             "keep the one that describes the model")
    if (directory / MANIFEST_FILE).is_file():
        manifest = read_manifest(directory)
        with (directory / MANIFEST_FILE).open("rb") as fh:
            explicit = "version" in tomllib.load(fh)
    elif (directory / MLMODEL_FILE).is_file():
        manifest, explicit = read_mlmodel(directory), False
    else:
        raise ModelLoadError(f"the model directory has neither a {MANIFEST_FILE} nor an MLflow {MLMODEL_FILE} file")
    if manifest.runtime not in RUNTIMES:
        raise ModelLoadError(f"unknown runtime {manifest.runtime!r} (known: {', '.join(sorted(RUNTIMES))})")
    if not (directory / manifest.artifact).is_file():
        raise ModelLoadError(f"artifact {manifest.artifact!r} is not in the model directory")
    if manifest.runtime == "keras" and (directory / manifest.artifact).suffix == ".keras":
        reason = unsafe_reason(directory / manifest.artifact, manifest.parameters)
        if reason is not None:
            raise ModelLoadError(reason)
    return manifest, explicit


def loaded_as(manifest: ModelManifest) -> str:
    """The artifact's path with the suffix of the format its runtime loads it as, for ``check_artifact``.

    The sklearn runtime loads anything but ``.skops``, ``.pkl`` and ``.pickle`` with joblib (so
    ``model.bin`` is judged as ``model.bin.joblib``); ``mlflow_pyfunc`` unpickles what its MLmodel names; a
    ``keras`` model with ``safe_mode = false`` runs the Python code its file stores (judged as ``.py``).
    """
    suffix = PurePosixPath(manifest.artifact).suffix
    if manifest.runtime == "sklearn" and suffix not in {".skops", ".pkl", ".pickle"}:
        return f"{manifest.artifact}.joblib"
    if manifest.runtime == "mlflow_pyfunc":
        return f"{manifest.artifact}.cloudpickle"
    if manifest.runtime == "keras" and manifest.parameters.get("safe_mode", True) is False:
        return f"{manifest.artifact}.py"
    return manifest.artifact


def _inspect(fh: BinaryIO, max_unpacked_bytes: int,
             check_file: Callable[[str], None] | None) -> tuple[str, str, ModelManifest, bool, bool]:
    info = check_archive(fh, max_unpacked_bytes=max_unpacked_bytes)
    strip = len(PurePosixPath(info.prefix).parts) if info.prefix else 0
    manifests = [path for path in info.files if PurePosixPath(path).name in (MANIFEST_FILE, MLMODEL_FILE)
                 and len(PurePosixPath(path).parts) - strip > 1]
    if manifests:
        raise InvalidInput(f"the archive holds a second manifest, {manifests[0]}; a pushed archive is one model "
                           f"directory, with its {MANIFEST_FILE} (or MLmodel) at the top", field="file")
    if check_file is not None:
        for path in info.files:
            check_file(path)
    checksum = sha256_of(fh)
    with tempfile.TemporaryDirectory(prefix="mlgate-push-") as scratch:
        extract_archive(fh, Path(scratch), info)
        try:
            manifest, explicit = read_model_dir(Path(scratch))
        except ModelLoadError as exc:
            message = exc.message.replace(str(Path(scratch) / MANIFEST_FILE), MANIFEST_FILE).replace(scratch, ".")
            raise InvalidInput(f"the pushed model directory is not valid: {message}", field="file") from exc
        named = (Path(scratch) / MANIFEST_FILE).is_file()
        if check_file is not None:
            check_file(loaded_as(manifest))  # a link to a member of another name, or a format by runtime
    return info.format, checksum, manifest, explicit, named


async def push_archive(catalog: Catalog, store: ArtifactStore, name: str, fh: BinaryIO, *,
                       version: str | None = None, by: Actor | None = None,
                       max_unpacked_bytes: int,
                       check_file: Callable[[str], None] | None = None) -> VersionInfo:
    """Check, store and record one pushed archive as model ``name``; returns the recorded version.

    Raises InvalidArchive / InvalidInput (400) for a bad archive or manifest, VersionExists (409), and
    whatever ``check_file`` raises for a file of the archive (before anything is stored or recorded).
    """
    for value, what in ((name, "model_name"), (version, "version")):
        if value is not None and not is_valid_name(value):
            raise InvalidInput(f"{what} {value!r} is not valid: letters, digits, '.', '_' and '-', "
                               "starting with a letter or digit", field=what)
    fmt, checksum, manifest, explicit, named = await anyio.to_thread.run_sync(
        _inspect, fh, max_unpacked_bytes, check_file)
    if named and manifest.name != name:  # model.toml always names its model; MLmodel never does
        raise InvalidInput(f"the archive's {MANIFEST_FILE} names model {manifest.name!r}, but it was pushed "
                           f"as {name!r}", field="model_name")
    if version is None:
        version = manifest.version if explicit else await catalog.next_version(name)
    existing = await catalog.snapshot()
    if name in existing.models and version in existing.models[name].versions:
        raise VersionExists(name, version)
    size = fh.seek(0, 2)
    fh.seek(0)
    uri = await anyio.to_thread.run_sync(store.put, name, version, fh, checksum, fmt)
    stored = manifest.model_copy(update={"name": name, "version": version})
    info = VersionInfo(name, version, manifest.runtime, uri, checksum, size,
                       stored.model_dump(mode="json"), by.name if by else None, utcnow())
    await catalog.add_version(info, description=manifest.description, by=by)
    return info
