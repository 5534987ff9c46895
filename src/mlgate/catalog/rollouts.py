"""Rollouts without downtime: keep the models served from the database registry equal to the catalog.

``sync()`` reads the catalog and, per model, builds the route it asks for (production alias, or the
highest version when there is none; other aliases; canary; shadow). Then, in this order:

1. every version the new route needs is loaded (artifact fetched and checked, runtime loaded, hooks run)
   and warmed with one request, while traffic still goes to the old versions;
2. the route is swapped in one assignment, so each request sees the old route or the new one;
3. the versions the new route no longer needs are taken out of the lookup table at once (no new request
   can reach them), then unloaded in the background once their in-flight requests are done
   (at most ``drain_timeout_s``).

A version that fails to load never gets traffic: its role in the route stays with the version that had
it. Replicas call ``sync()`` when the change feed says the catalog moved (``mlgate.catalog.follower``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path

import anyio
import structlog

from mlgate.catalog.store import ArtifactStore
from mlgate.db.queries.catalog import Catalog, ModelInfo, VersionInfo, version_key
from mlgate.errors import Conflict, MlgateError, ModelNotFound
from mlgate.inference.registry import ModelHandle, ModelRegistry, ModelState
from mlgate.inference.traffic import TrafficRoute
from mlgate.inference.warmup import warm
from mlgate.model.manifest import ModelManifest
from mlgate.model.repository import ModelSource

__all__ = ["Rollouts", "desired_route", "warm"]

log = structlog.get_logger("mlgate.catalog.rollouts")


def desired_route(info: ModelInfo) -> TrafficRoute | None:
    """The route the catalog asks for: production alias, else the highest version; None without versions."""
    if not info.versions:
        return None
    production = info.aliases.get("production")
    if production not in info.versions:
        production = max(info.versions, key=version_key)
    aliases = {a: v for a, v in info.aliases.items() if v in info.versions}
    canary = info.canary_version if info.canary_version in info.versions else None
    shadow = info.shadow_version if info.shadow_version in info.versions else None
    return TrafficRoute(production, aliases, canary, info.canary_percent if canary else 0.0, shadow,
                 frozenset(info.versions))


class Rollouts:
    """Makes this server serve what the catalog says: loads, warms and unloads registry versions and
    installs each model's traffic route, draining a version (``drain_timeout_s``) before unloading it.
    ``only``: which models this server serves (by name; ``mlgate worker --model``); the others' versions are
    never loaded here.
    """
    def __init__(self, registry: ModelRegistry, catalog: Catalog, store: ArtifactStore, *,
                 drain_timeout_s: float = 30.0, only: Callable[[str], bool] | None = None) -> None:
        self.registry = registry
        self.catalog = catalog
        self.store = store
        self.drain_timeout_s = drain_timeout_s
        self.only = only
        self.models: dict[str, ModelInfo] = {}
        """The catalog as last applied."""
        self.applied_change = -1
        self.unloaded: set[str] = set()
        """Models unloaded on this replica through the V2 repository extension (kept out of sync)."""
        self._owned: dict[str, dict[str, ModelHandle]] = {}
        self._lock = anyio.Lock()
        self._draining: set[asyncio.Task[None]] = set()

    # -- applying the catalog ---------------------------------------------------------------------

    async def sync(self, *, force: bool = False) -> bool:
        """Apply the catalog if it changed since the last sync (or always, with ``force``); True if applied."""
        async with self._lock:
            snapshot = await self.catalog.snapshot()
            if not force and snapshot.change_id == self.applied_change:
                return False
            for info in snapshot.models.values():
                if self.only is None or self.only(info.name):
                    await self._apply(info)
            for name in set(self._owned) - set(snapshot.models):
                await self._retire(name, set())
                self.registry.set_route(name, None)
            self.models = snapshot.models
            self.applied_change = snapshot.change_id
            return True

    def _folder_model(self, name: str) -> bool:
        owned = self._owned.get(name, {})
        return any(h is not owned.get(h.version) for h in self.registry if h.name == name)

    async def _apply(self, info: ModelInfo) -> None:
        if self._folder_model(info.name):
            log.warning("registry model shadowed by the model repository folder; not served", model=info.name)
            return
        wanted = None if info.name in self.unloaded else desired_route(info)
        if wanted is None:
            await self._retire(info.name, set())
            self.registry.set_route(info.name, None)
            return
        for version in sorted(wanted.versions(), key=version_key):
            await self._ensure_loaded(info.versions[version])
        route = self._reconcile(info.name, wanted)
        self.registry.set_route(info.name, route)
        await self._retire(info.name, route.versions())
        if route != wanted:
            log.error("rollout incomplete: versions failed to load keep no traffic", model=info.name,
                      wanted=str(wanted), installed=str(route))
        else:
            log.info("route installed", model=info.name, production=route.production, canary=route.canary,
                     canary_percent=route.canary_percent, shadow=route.shadow)

    def _ready(self, name: str, version: str | None) -> bool:
        handle = self._owned.get(name, {}).get(version or "")
        return handle is not None and handle.ready

    def _reconcile(self, name: str, wanted: TrafficRoute) -> TrafficRoute:
        """``wanted``, with each version that is not READY replaced by what the installed route had."""
        old = self.registry.route(name)

        def keep(new: str | None, previous: str | None) -> str | None:
            if new is None or self._ready(name, new):
                return new
            return previous if self._ready(name, previous) else None

        production = keep(wanted.production, old.production if old else None) or wanted.production
        aliases = {}
        for alias, version in wanted.aliases.items():
            kept = keep(version, old.aliases.get(alias) if old else None)
            if kept is not None:
                aliases[alias] = kept
        canary = keep(wanted.canary, old.canary if old else None)
        shadow = keep(wanted.shadow, old.shadow if old else None)
        return TrafficRoute(production, aliases, canary, wanted.canary_percent if canary else 0.0, shadow,
                     wanted.registered)

    async def _ensure_loaded(self, version: VersionInfo) -> ModelHandle:
        owned = self._owned.setdefault(version.name, {})
        handle = owned.get(version.version)
        if handle is not None and handle.state in (ModelState.READY, ModelState.LOADING):
            return handle
        try:
            directory = await anyio.to_thread.run_sync(
                self.store.materialize, version.name, version.version, version.artifact_uri, version.checksum)
            manifest = ModelManifest.model_validate(
                {**version.manifest, "name": version.name, "version": version.version})
            source = ModelSource(directory, manifest)
        except Exception as exc:  # noqa: BLE001 - one broken artifact must not stop the other models' rollouts
            reason = exc.message if isinstance(exc, MlgateError) else f"{type(exc).__name__}: {exc}"
            source = ModelSource(Path("."), ModelManifest.model_construct(
                name=version.name, version=version.version, runtime=version.runtime, artifact="?"), reason)
        handle = await self.registry.load_model(source)
        owned[version.version] = handle
        if handle.ready:
            await warm(handle)
        return handle

    async def _retire(self, name: str, keep: Iterable[str]) -> None:
        keep = set(keep)
        owned = self._owned.get(name, {})
        for version in [v for v in owned if v not in keep]:
            handle = owned.pop(version)
            self.registry.detach(handle)
            task = asyncio.get_running_loop().create_task(self._drain_and_unload(handle))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)
        if not owned:
            self._owned.pop(name, None)

    async def _drain_and_unload(self, handle: ModelHandle) -> None:
        drained = await handle.drain(self.drain_timeout_s)
        if not drained:
            log.warning("unloading a version with requests still in flight", model=handle.name,
                        version=handle.version, in_flight=handle.in_flight)
        await self.registry.unload_model(handle)
        log.info("version unloaded", model=handle.name, version=handle.version)

    # -- what the API asks for --------------------------------------------------------------------

    async def prepare(self, name: str, version: str) -> None:
        """Load and warm ``version`` before an alias, canary or shadow moves to it.

        Raises Conflict (409) when it cannot be loaded; nothing is changed then.
        """
        info = await self.catalog.model(name)
        if version not in info.versions:
            return  # the catalog answers with the precise 404 when the change is attempted
        if self._folder_model(name):
            raise Conflict(f"model '{name}' is served from the model repository folder on this server; "
                           "registry versions of the same name are not served", field="model_name")
        async with self._lock:
            handle = await self._ensure_loaded(info.versions[version])
        if not handle.ready:
            raise Conflict(f"model '{name}' version '{version}' failed to load: {handle.reason}; "
                           "traffic stays where it was", field="version")

    async def load(self, name: str) -> None:
        """V2 repository extension: serve a registry model again on this server."""
        if name not in (await self.catalog.snapshot()).models:
            raise ModelNotFound(name)
        self.unloaded.discard(name)
        await self.sync(force=True)

    async def unload(self, name: str) -> None:
        """V2 repository extension: stop serving a registry model on this server (drained first)."""
        if name not in (await self.catalog.snapshot()).models:
            raise ModelNotFound(name)
        self.unloaded.add(name)
        await self.sync(force=True)

    async def close(self) -> None:
        """Wait for versions still draining (bounded by the drain timeout) at shutdown."""
        for task in list(self._draining):
            with contextlib.suppress(Exception):
                await task
