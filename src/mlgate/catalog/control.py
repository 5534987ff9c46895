"""The control plane: the database registry's operations, as the REST API and the CLI call them.

Beside ``DataPlane`` (serving), ``ControlPlane`` owns the catalog, the artifact store, rollouts, the
prediction log, shadow traffic and the change follower. Each change is written to the catalog and then
applied on this server before the call returns (``Rollouts.sync``), so "200 OK" means "in effect here";
other replicas follow within ``registry_poll_interval_s`` (at once on PostgreSQL).
Moving traffic to a version first loads and warms it here, so a version that cannot load never gets any.
Changes take ``by``, the ``Actor`` of the audit log: the catalog writes its entry in the change's own
transaction; a V2 load or unload (this server only) is audited right after it takes effect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import BinaryIO

import structlog

from mlgate.catalog.follower import ChangeFollower
from mlgate.catalog.push import push_archive
from mlgate.catalog.recording import CallRecorder
from mlgate.catalog.rollouts import Rollouts, warm
from mlgate.catalog.shadow import ShadowTraffic
from mlgate.catalog.store import ArtifactStore
from mlgate.db.engine import Database
from mlgate.db.queries.catalog import Catalog, ModelInfo, VersionInfo, version_key
from mlgate.db.tables.audit import Actor
from mlgate.errors import Conflict, InvalidInput, MlgateError, ModelVersionNotFound
from mlgate.inference.dataplane import DataPlane
from mlgate.model.repository import ModelSource, rescan, scan_repository
from mlgate.predlog.writer import PredictionLog
from mlgate.settings import Settings, default_examples_dir

__all__ = ["ControlPlane"]

log = structlog.get_logger("mlgate.catalog.control")


class ControlPlane:
    """The catalog's operations on this server (see the module docstring).

    Built by the lifespan (``mlgate.lifespan``) with what it composes: ``predlog`` (None when the prediction
    log is off) and ``recorder`` (its data plane observer), ``shadow`` (shadow traffic), ``folder_sources`` (the
    repository folder's models by name, for the V2 repository extension's load), ``on_change`` (called when
    another replica changed the registry or identities: the credential cache clears itself) and ``only`` (the
    registry models this server loads, by name: ``mlgate worker --model``; None: all).
    """

    def __init__(self, settings: Settings, database: Database, plane: DataPlane, *,
                 predlog: PredictionLog | None = None, recorder: CallRecorder | None = None,
                 shadow: ShadowTraffic | None = None, folder_sources: Mapping[str, list[ModelSource]] | None = None,
                 on_change: Sequence[Callable[[], None]] = (), only: Callable[[str], bool] | None = None) -> None:
        self.settings = settings
        self.plane = plane
        self.catalog = Catalog(database)
        self.store = ArtifactStore(settings.effective_artifact_store, settings.data_dir / "cache",
                                   max_unpacked_bytes=settings.registry_max_unpacked_bytes)
        self.rollouts = Rollouts(plane.registry, self.catalog, self.store, drain_timeout_s=settings.drain_timeout_s,
                                 only=only)
        self.follower = ChangeFollower(database, self.refresh, poll_interval_s=settings.registry_poll_interval_s)
        self.on_change = tuple(on_change)
        self._seen_change = 0
        self.predlog = predlog
        self.recorder = recorder
        self.shadow = shadow
        self.folder_sources: dict[str, list[ModelSource]] = dict(folder_sources or {})
        """Models of the repository folder, by name (for the V2 repository extension's load)."""

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the prediction log's writer, load what the catalog asks for, then follow its changes."""
        if self.predlog is not None:
            self.predlog.start()
        try:
            await self.rollouts.sync(force=True)
        except Exception:  # noqa: BLE001 - a registry that cannot load must not stop the folder models
            log.exception("registry: initial sync failed; the follower retries")
        self._apply_sample_rates()
        self.follower.start()

    async def refresh(self) -> bool:
        """Apply the catalog if another replica (or this one) changed it; True when something was applied."""
        last = await self.catalog.last_change()
        if last != self._seen_change:
            self._seen_change = last
            for listener in self.on_change:
                listener()
        if last == self.rollouts.applied_change:
            return False
        applied = await self.rollouts.sync()
        self._apply_sample_rates()
        return applied

    async def close(self) -> None:
        """Stop following, let shadow requests finish (``drain_timeout_s``), unload, flush the prediction log."""
        await self.follower.close()
        if self.shadow is not None:
            await self.shadow.close(self.settings.drain_timeout_s)
        await self.rollouts.close()
        if self.predlog is not None:
            await self.predlog.close()

    def _apply_sample_rates(self) -> None:
        if self.predlog is not None:
            self.predlog.sample_rates = {n: m.log_sample_rate for n, m in self.rollouts.models.items()
                                         if m.log_sample_rate is not None}

    async def _changed(self) -> None:
        await self.rollouts.sync()
        self._apply_sample_rates()

    def record_refused(self, model: str, caller: str | None, error: MlgateError, latency_ms: float,
                       request_id: str | None) -> None:
        """Log a request on ``model`` answered with an error before the data plane served it (a 429 from the
        rate limiter, bad input read before the model was looked up): only for a model this server has (never
        a name a caller made up), and only when the prediction log is on."""
        if self.recorder is not None and self.plane.registry.versions(model):
            self.recorder.refused(model, caller, error, latency_ms, request_id)

    # -- registry operations ----------------------------------------------------------------------

    async def push(self, name: str, fh: BinaryIO, *, version: str | None = None, by: Actor | None = None,
                   check_file: Callable[[str], None] | None = None) -> VersionInfo:
        """Check, store and record an archive as a version of ``name`` (see ``push_archive``, which calls
        ``check_file`` on each file of the archive before anything is unpacked or recorded).

        Conflict (409) when this server serves a model of that name from the repository folder: the folder's
        model wins on the server that has it, so a registry version of the same name would never be served.
        """
        if name in self.folder_sources:
            directory = self.folder_sources[name][0].directory
            raise Conflict(f"model '{name}' is served from the model repository folder ({directory}) on this "
                           "server, and a folder model wins over a registry model of the same name: push under "
                           "another name, or remove the folder model first", field="model_name")
        info = await push_archive(self.catalog, self.store, name, fh, version=version, by=by,
                                  max_unpacked_bytes=self.settings.registry_max_unpacked_bytes,
                                  check_file=check_file)
        log.info("version pushed", model=name, version=info.version, checksum=info.checksum,
                 by=by.name if by else None)
        await self._changed()
        return info

    async def delete_version(self, name: str, version: str, *, by: Actor | None = None) -> None:
        """Delete a version that no alias or traffic points at (409 otherwise), then its artifact from the store."""
        info = await self.catalog.delete_version(name, version, by=by)
        await self._changed()
        try:
            await asyncio.to_thread(self.store.delete, info.artifact_uri)
        except OSError as exc:
            log.warning("artifact not removed from the store", uri=info.artifact_uri, error=str(exc))

    async def set_alias(self, name: str, alias: str, version: str, *, by: Actor | None = None) -> str | None:
        """Point ``alias`` at ``version`` (loaded and warmed first); returns the version it left."""
        await self.rollouts.prepare(name, version)
        try:
            previous = await self.catalog.set_alias(name, alias, version, by=by)
        except BaseException:
            await self._forget_prepared()
            raise
        await self._changed()
        return previous

    async def _forget_prepared(self) -> None:
        """After a change that failed to be recorded: unload what was loaded for it (best effort)."""
        try:
            await self.rollouts.sync(force=True)
        except MlgateError as exc:
            log.warning("could not unload versions prepared for a failed change", error=exc.message)

    async def rollback(self, name: str, alias: str, *, by: Actor | None = None) -> tuple[str, str]:
        """Move ``alias`` back to its previous version (loaded and warmed first); returns (from, to)."""
        info = await self.catalog.model(name)
        # Load the version we go back to before the alias moves (it may have been unloaded since).
        target = await self.catalog.rollback_target(name, alias)
        if target is not None and target in info.versions:
            await self.rollouts.prepare(name, target)
        moved = await self.catalog.rollback(name, alias, by=by)
        await self._changed()
        return moved

    async def delete_alias(self, name: str, alias: str, *, by: Actor | None = None) -> None:
        """Remove ``alias`` (never ``production`` while traffic depends on it; the catalog says why)."""
        await self.catalog.delete_alias(name, alias, by=by)
        await self._changed()

    async def set_traffic(self, name: str, *, canary_version: str | None, canary_percent: float,
                          shadow_version: str | None, by: Actor | None = None) -> None:
        """Set the canary version and share (0-100 %) and the shadow version of ``name``; versions are
        loaded and warmed before any request reaches them.
        """
        if canary_version is not None and not 0 < canary_percent <= 100:
            raise InvalidInput("canary percent must be > 0 and <= 100", field="canary.percent")
        info = await self.catalog.model(name)
        production = info.aliases.get("production")
        for version, field in ((canary_version, "canary.version"), (shadow_version, "shadow")):
            if version is not None and version == production:
                what = "canary" if field == "canary.version" else "shadow"
                raise InvalidInput(f"version {version} is the production version of {name}; the {what} must be "
                                   "another version", field=field)
        for version in (canary_version, shadow_version):
            if version is not None:
                if version not in info.versions:
                    raise ModelVersionNotFound(name, version, list(info.versions))
                await self.rollouts.prepare(name, version)
        try:
            await self.catalog.set_traffic(name, canary_version=canary_version, canary_percent=canary_percent,
                                           shadow_version=shadow_version, by=by)
        except BaseException:
            await self._forget_prepared()
            raise
        await self._changed()

    async def update_model(self, name: str, *, log_sample_rate: float | None = None,
                           description: str | None = None, by: Actor | None = None) -> None:
        """Change per-model settings (the prediction log's sample rate of tensors)."""
        await self.catalog.update_model(name, log_sample_rate=log_sample_rate, description=description, by=by)
        await self._changed()

    async def model(self, name: str) -> ModelInfo:
        """The catalog's record of ``name``; 404 when it has none."""
        return await self.catalog.model(name)

    # -- V2 model repository extension ---------------------------------------------------------------

    async def index(self) -> list[dict[str, str | None]]:
        """Every model version this server knows: loaded ones with their state, registry ones not loaded.

        ``reason`` is why a version is not ready (a FAILED one's load error): show it only to callers that may
        deploy the model (``mlgate.api.repository`` does)."""
        entries: dict[tuple[str, str], dict[str, str | None]] = {}
        for name, sources in self.folder_sources.items():
            for source in sources:
                entries[(name, source.version)] = {"name": name, "version": source.version, "state": "UNAVAILABLE",
                                                   "reason": "unloaded"}
        try:
            snapshot = await self.catalog.snapshot()
            for info in snapshot.models.values():
                for version in info.versions:
                    entries[(info.name, version)] = {"name": info.name, "version": version,
                                                     "state": "UNAVAILABLE", "reason": "not loaded"}
        except MlgateError as exc:
            log.warning("repository index without the registry database", error=exc.message)
        for handle in self.plane.registry:
            entries[(handle.name, handle.version)] = {
                "name": handle.name, "version": handle.version, "state": handle.state.value,
                "reason": handle.reason or ""}
        return [entries[k] for k in sorted(entries, key=lambda k: (k[0], version_key(k[1])))]

    async def load(self, name: str, *, by: Actor | None = None) -> None:
        """Load a model on this server: a folder model from its directory, or a registry model's route.

        Audited once loaded, in a transaction of its own (a load changes this server, not the catalog)."""
        await self._load(name)
        await self.catalog.audit(by, action="model.load", model=name)

    async def _load(self, name: str) -> None:
        if name not in self.folder_sources and name not in self.rollouts.models:
            await self._rescan_folder(name)
        if name in self.folder_sources:
            registry = self.plane.registry
            for source in self.folder_sources[name]:
                try:
                    current = registry.get(name, source.version)
                except MlgateError:
                    current = None
                if current is not None and current.ready:
                    continue
                fresh = await asyncio.to_thread(rescan, source)
                handle = await registry.load_model(fresh)
                if handle.ready:
                    await warm(handle)
            return
        await self.rollouts.load(name)

    async def _rescan_folder(self, name: str) -> None:
        """Look for a model directory named ``name`` added to the repository folder since the start (the V2
        repository extension's load picks it up without a restart)."""
        root = self.settings.model_repository or default_examples_dir()
        try:
            sources = await asyncio.to_thread(scan_repository, root)
        except (OSError, ValueError) as exc:
            log.warning("model repository folder cannot be scanned", repository=str(root), error=str(exc))
            return
        found = [source for source in sources if source.name == name]
        if found:
            log.info("model directory found in the repository folder", model=name, repository=str(root))
            self.folder_sources[name] = found

    async def unload(self, name: str, *, by: Actor | None = None) -> None:
        """Unload a model on this server; its requests in flight finish first (up to the drain timeout).

        Audited once unloaded, in a transaction of its own."""
        await self._unload(name)
        await self.catalog.audit(by, action="model.unload", model=name)

    async def _unload(self, name: str) -> None:
        if name in self.folder_sources:
            handles = [h for h in self.plane.registry if h.name == name]
            for handle in handles:
                self.plane.registry.detach(handle)
            for handle in handles:
                await handle.drain(self.settings.drain_timeout_s)
                await self.plane.registry.unload_model(handle)
            return
        await self.rollouts.unload(name)
