"""The registry of served models: (name, version) -> a loaded runtime and its state.

Loading happens on worker threads; a model that fails to load is kept with state FAILED and its reason,
and never stops the others. ``get`` resolves a request's model name and optional version: without a
version, the highest version number is used.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import structlog

from mlgate.errors import ModelLoadError, ModelNotFound, ModelVersionNotFound
from mlgate.manifest import ModelManifest, TensorSpec
from mlgate.repository import ModelSource
from mlgate.runtimes import Runtime, runtime_class

__all__ = ["ModelHandle", "ModelRegistry", "ModelState"]

log = structlog.get_logger("mlgate.registry")


class ModelState(enum.StrEnum):
    LOADING = "LOADING"
    READY = "READY"
    FAILED = "FAILED"
    UNLOADED = "UNLOADED"


@dataclass(eq=False)
class ModelHandle:
    """One model version as served: manifest, runtime and state (FAILED carries ``reason``)."""

    name: str
    version: str
    directory: Path
    manifest: ModelManifest | None
    state: ModelState = ModelState.LOADING
    reason: str | None = None
    runtime: Runtime | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        return self.state is ModelState.READY

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.runtime.inputs if self.runtime else ()

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.runtime.outputs if self.runtime else ()

    @property
    def platform(self) -> str:
        return self.runtime.platform if self.runtime else (self.manifest.runtime if self.manifest else "")

    @property
    def labels(self) -> tuple[str, ...] | None:
        return self.manifest.labels if self.manifest else None


def _version_key(version: str) -> tuple[int, int | str]:
    return (1, int(version)) if version.isdigit() else (0, version)


class ModelRegistry:
    def __init__(self) -> None:
        self._models: dict[str, dict[str, ModelHandle]] = {}

    def __iter__(self) -> Iterator[ModelHandle]:
        for versions in self._models.values():
            yield from versions.values()

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[str]:
        """Versions of ``name``, oldest first (numeric versions compare as numbers)."""
        return sorted(self._models.get(name, {}), key=_version_key)

    def get(self, name: str, version: str | None = None) -> ModelHandle:
        """The handle for ``name`` at ``version`` (default: the highest version), in any state.

        Raises ModelNotFound or ModelVersionNotFound (404).
        """
        versions = self._models.get(name)
        if not versions:
            raise ModelNotFound(name)
        if version is None:
            version = self.versions(name)[-1]
        handle = versions.get(version)
        if handle is None:
            raise ModelVersionNotFound(name, version, self.versions(name))
        return handle

    async def load(self, sources: Iterable[ModelSource]) -> None:
        """Load every source on worker threads, one at a time; failures are recorded, not raised."""
        for source in sources:
            handle = ModelHandle(source.name, source.version, source.directory, source.manifest)
            self._models.setdefault(handle.name, {})[handle.version] = handle
            if source.error is not None:
                self._fail(handle, source.error)
                continue
            await anyio.to_thread.run_sync(self._load_one, handle)

    def _load_one(self, handle: ModelHandle) -> None:
        assert handle.manifest is not None
        try:
            runtime = runtime_class(handle.manifest.runtime)(handle.manifest, handle.directory)
            runtime.load()
        except ModelLoadError as exc:
            self._fail(handle, exc.message)
            return
        except Exception as exc:  # noqa: BLE001 - any failure of third-party loading code marks the model FAILED
            self._fail(handle, f"{type(exc).__name__}: {exc}")
            return
        handle.runtime = runtime
        handle.state = ModelState.READY
        log.info("model loaded", model=handle.name, version=handle.version, runtime=runtime.name,
                 directory=str(handle.directory))

    def _fail(self, handle: ModelHandle, reason: str) -> None:
        handle.state = ModelState.FAILED
        handle.reason = reason
        log.error("model failed to load", model=handle.name, version=handle.version,
                  directory=str(handle.directory), reason=reason)

    async def unload_all(self) -> None:
        for handle in self:
            if handle.runtime is not None:
                await anyio.to_thread.run_sync(handle.runtime.unload)
                handle.runtime = None
            handle.state = ModelState.UNLOADED
