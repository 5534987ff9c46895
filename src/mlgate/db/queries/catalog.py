"""The model catalog in the database: reads and changes of models, versions, aliases and traffic.

Every change runs in one transaction that also appends a ``registry_changes`` row and, on PostgreSQL,
sends ``NOTIFY mlgate_registry`` with the change id, so other replicas apply it at once (they also poll),
and writes the change's audit entry (``mlgate.db.tables.audit``: who, from which address, in which request; actor
``system`` when no ``by`` is given), so neither exists without the other.
SQLAlchemy's exceptions become mlgate errors here: a duplicate version is VersionExists (409), a lost
database DatabaseUnavailable (503).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mlgate.db.engine import Database
from mlgate.db.tables.audit import Actor, record_audit
from mlgate.db.tables.catalog import (
    AliasHistory,
    ModelAlias,
    ModelRecord,
    ModelTraffic,
    ModelVersionRecord,
    RegistryChange,
)
from mlgate.errors import (
    AliasNotFound,
    Conflict,
    DatabaseUnavailable,
    ModelNotFound,
    ModelVersionNotFound,
    VersionExists,
)

__all__ = ["NOTIFY_CHANNEL", "Catalog", "CatalogSnapshot", "ModelInfo", "VersionInfo", "version_key"]

NOTIFY_CHANNEL = "mlgate_registry"


def version_key(version: str) -> tuple[int, int | str]:
    """Sort key: numeric versions compare as numbers and above named ones."""
    return (1, int(version)) if version.isdigit() else (0, version)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One model version as the catalog records it: runtime, artifact, checksum, size, manifest, who and when."""
    name: str
    version: str
    runtime: str
    artifact_uri: str
    checksum: str
    size_bytes: int
    manifest: dict[str, Any]
    created_by: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model as the catalog holds it: versions (oldest first), aliases, canary, shadow, sample rate."""

    name: str
    description: str
    versions: dict[str, VersionInfo] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    canary_version: str | None = None
    canary_percent: float = 0.0
    shadow_version: str | None = None
    log_sample_rate: float | None = None

    def referenced(self) -> dict[str, list[str]]:
        """version -> what points at it (``alias:production``, ``canary``, ``shadow``)."""
        refs: dict[str, list[str]] = {}
        for alias, version in self.aliases.items():
            refs.setdefault(version, []).append(f"alias '{alias}'")
        if self.canary_version:
            refs.setdefault(self.canary_version, []).append("the canary")
        if self.shadow_version:
            refs.setdefault(self.shadow_version, []).append("the shadow")
        return refs


@dataclass(frozen=True, slots=True)
class CatalogSnapshot:
    """Every model of the catalog as of change ``change_id``."""
    models: dict[str, ModelInfo]
    change_id: int


def _version(name: str, row: ModelVersionRecord) -> VersionInfo:
    return VersionInfo(name, row.version, row.runtime, row.artifact_uri, row.checksum, row.size_bytes,
                       dict(row.manifest), row.created_by, row.created_at)


class Catalog:
    """The catalog's queries and changes; each change is one transaction that also writes the registry
    change log (which replicas follow) and, with ``by``, the audit log.
    """
    def __init__(self, database: Database) -> None:
        self.database = database

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        try:
            async with self.database.session() as session:
                yield session
        except IntegrityError:
            raise
        except (DBAPIError, OSError) as exc:
            raise DatabaseUnavailable("the registry database cannot be reached; try again shortly") from exc

    async def _change(self, session: AsyncSession, model: str, what: str, by: Actor | None, *, action: str,
                      target: str, detail: dict[str, Any] | None = None) -> None:
        """Record a change (``registry_changes``) and its audit entry in ``session``'s transaction."""
        change = RegistryChange(model=model, what=what[:256], by=by.name if by else None)
        session.add(change)
        actor = by or Actor("system")
        record_audit(session, actor=actor.name, action=action, target=f"model:{target}", detail=detail,
                     client=actor.client, request_id=actor.request_id)
        await session.flush()
        if not self.database.is_sqlite:
            await session.execute(text("SELECT pg_notify(:channel, :payload)"),
                                  {"channel": NOTIFY_CHANNEL, "payload": str(change.id)})

    @staticmethod
    async def _model(session: AsyncSession, name: str, *, lock: bool = False) -> ModelRecord:
        """The model's row; with ``lock``, held until commit (PostgreSQL) so changes to it serialize."""
        query = select(ModelRecord).where(ModelRecord.name == name)
        row = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
        if row is None:
            raise ModelNotFound(name)
        return row

    @staticmethod
    async def _versions(session: AsyncSession, model: ModelRecord) -> list[str]:
        rows = await session.execute(select(ModelVersionRecord.version).where(ModelVersionRecord.model_id == model.id))
        return sorted(rows.scalars(), key=version_key)

    async def _require_version(self, session: AsyncSession, model: ModelRecord, version: str) -> None:
        versions = await self._versions(session, model)
        if version not in versions:
            raise ModelVersionNotFound(model.name, version, versions)

    # -- reads --------------------------------------------------------------------------------------

    async def last_change(self) -> int:
        """The id of the newest registry change (0 when none)."""
        async with self._session() as session:
            return int((await session.execute(select(func.max(RegistryChange.id)))).scalar() or 0)

    async def snapshot(self) -> CatalogSnapshot:
        """Every model with its versions, aliases and traffic, and the id of the last change applied."""
        async with self._session() as session:
            change_id = int((await session.execute(select(func.max(RegistryChange.id)))).scalar() or 0)
            names = {m.id: m for m in (await session.execute(select(ModelRecord))).scalars()}
            versions: dict[int, dict[str, VersionInfo]] = {i: {} for i in names}
            for row in (await session.execute(select(ModelVersionRecord))).scalars():
                versions[row.model_id][row.version] = _version(names[row.model_id].name, row)
            aliases: dict[int, dict[str, str]] = {i: {} for i in names}
            for alias in (await session.execute(select(ModelAlias))).scalars():
                aliases[alias.model_id][alias.alias] = alias.version
            traffic = {t.model_id: t for t in (await session.execute(select(ModelTraffic))).scalars()}
        models = {}
        for model_id, model in names.items():
            t = traffic.get(model_id)
            ordered = dict(sorted(versions[model_id].items(), key=lambda kv: version_key(kv[0])))
            models[model.name] = ModelInfo(
                model.name, model.description, ordered, aliases[model_id],
                t.canary_version if t else None, t.canary_percent if t else 0.0,
                t.shadow_version if t else None, model.log_sample_rate)
        return CatalogSnapshot(dict(sorted(models.items())), change_id)

    async def model(self, name: str) -> ModelInfo:
        """One model; ModelNotFound (404) when the catalog does not have it."""
        snapshot = await self.snapshot()
        if name not in snapshot.models:
            raise ModelNotFound(name)
        return snapshot.models[name]

    # -- changes ------------------------------------------------------------------------------------

    async def add_version(self, info: VersionInfo, *, description: str = "", by: Actor | None = None) -> None:
        """Record a pushed version (creating the model on its first push). VersionExists (409) if taken."""
        try:
            async with self._session() as session:
                model = (await session.execute(
                    select(ModelRecord).where(ModelRecord.name == info.name))).scalar_one_or_none()
                if model is None:
                    model = ModelRecord(name=info.name, description=description)
                    session.add(model)
                    await session.flush()
                session.add(ModelVersionRecord(
                    model_id=model.id, version=info.version, runtime=info.runtime, artifact_uri=info.artifact_uri,
                    checksum=info.checksum, size_bytes=info.size_bytes, manifest=info.manifest,
                    created_by=info.created_by))
                await session.flush()
                await self._change(session, info.name, f"push {info.version}", by, action="model.push",
                                   target=f"{info.name}/{info.version}",
                                   detail={"checksum": info.checksum, "size_bytes": info.size_bytes})
        except IntegrityError as exc:
            raise VersionExists(info.name, info.version) from exc

    async def audit(self, by: Actor | None, *, action: str, model: str, detail: dict[str, Any] | None = None) -> None:
        """Write one audit entry in a transaction of its own: for changes to this server only, outside the
        catalog (a V2 repository load or unload)."""
        actor = by or Actor("system")
        async with self._session() as session:
            record_audit(session, actor=actor.name, action=action, target=f"model:{model}", detail=detail,
                         client=actor.client, request_id=actor.request_id)

    async def next_version(self, name: str) -> str:
        """One more than the highest numeric version of ``name`` ("1" for a new model)."""
        async with self._session() as session:
            row = (await session.execute(select(ModelRecord).where(ModelRecord.name == name))).scalar_one_or_none()
            if row is None:
                return "1"
            numbers = [int(v) for v in await self._versions(session, row) if v.isdigit()]
        return str(max(numbers, default=0) + 1)

    async def delete_version(self, name: str, version: str, *, by: Actor | None = None) -> VersionInfo:
        """Forget a version; Conflict (409) while an alias, the canary or the shadow points at it.

        The check and the delete run in one transaction, with the model row locked on PostgreSQL, so an
        alias cannot be pointed at the version in between.
        """
        async with self._session() as session:
            model = await self._model(session, name, lock=True)
            row = (await session.execute(select(ModelVersionRecord).where(
                ModelVersionRecord.model_id == model.id, ModelVersionRecord.version == version))).scalar_one_or_none()
            if row is None:
                raise ModelVersionNotFound(name, version, await self._versions(session, model))
            refs = [f"alias '{a.alias}'" for a in (await session.execute(select(ModelAlias).where(
                ModelAlias.model_id == model.id, ModelAlias.version == version))).scalars()]
            traffic = await session.get(ModelTraffic, model.id)
            if traffic is not None and traffic.canary_version == version:
                refs.append("the canary")
            if traffic is not None and traffic.shadow_version == version:
                refs.append("the shadow")
            if refs:
                raise Conflict(f"model '{name}' version '{version}' is in use by {', '.join(refs)}; "
                               "move those first", field="version")
            info = _version(name, row)
            await session.delete(row)
            await self._change(session, name, f"delete {version}", by, action="version.delete",
                               target=f"{name}/{version}")
        return info

    async def set_alias(self, name: str, alias: str, version: str, *, by: Actor | None = None) -> str | None:
        """Point ``alias`` at ``version`` (recorded in the alias history); returns the version it left."""
        async with self._session() as session:
            model = await self._model(session, name, lock=True)
            await self._require_version(session, model, version)
            row = await session.get(ModelAlias, (model.id, alias))
            previous = row.version if row else None
            if row is None:
                session.add(ModelAlias(model_id=model.id, alias=alias, version=version))
            else:
                row.version = version
            session.add(AliasHistory(model_id=model.id, alias=alias, version=version,
                                     changed_by=by.name if by else None))
            await self._change(session, name, f"alias {alias} -> {version}", by, action="alias.set",
                               target=f"{name}@{alias}", detail={"version": version, "previous": previous})
        return previous

    async def rollback_target(self, name: str, alias: str) -> str | None:
        """The version a rollback of ``alias`` would go back to (None: nothing to go back to)."""
        async with self._session() as session:
            rows = (await session.execute(
                select(AliasHistory.version).join(ModelRecord, ModelRecord.id == AliasHistory.model_id)
                .where(ModelRecord.name == name, AliasHistory.alias == alias)
                .order_by(AliasHistory.id.desc()).limit(2))).scalars().all()
        return rows[1] if len(rows) == 2 else None

    async def rollback(self, name: str, alias: str, *, by: Actor | None = None) -> tuple[str, str]:
        """Move ``alias`` back to the version it pointed at before its last move: (from, to).

        The last history entry is dropped, so repeated rollbacks walk further back. Conflict (409) when
        there is nothing to go back to.
        """
        async with self._session() as session:
            model = await self._model(session, name, lock=True)
            row = await session.get(ModelAlias, (model.id, alias))
            if row is None:
                raise AliasNotFound(name, alias)
            history = list((await session.execute(
                select(AliasHistory).where(AliasHistory.model_id == model.id, AliasHistory.alias == alias)
                .order_by(AliasHistory.id.desc()).limit(2))).scalars())
            if len(history) < 2:
                raise Conflict(f"alias '{alias}' of model '{name}' has no earlier version to roll back to",
                               field="alias")
            current, previous = history
            await self._require_version(session, model, previous.version)
            await session.delete(current)
            left = row.version
            row.version = previous.version
            await self._change(session, name, f"rollback {alias} {left} -> {previous.version}", by,
                               action="alias.rollback", target=f"{name}@{alias}",
                               detail={"version": previous.version, "previous": left})
        return left, previous.version

    async def delete_alias(self, name: str, alias: str, *, by: Actor | None = None) -> None:
        """Delete ``alias`` of ``name``; 404 when it has none."""
        async with self._session() as session:
            model = await self._model(session, name, lock=True)
            row = await session.get(ModelAlias, (model.id, alias))
            if row is None:
                raise AliasNotFound(name, alias)
            await session.delete(row)
            await session.execute(delete(AliasHistory).where(
                AliasHistory.model_id == model.id, AliasHistory.alias == alias))
            await self._change(session, name, f"alias {alias} removed", by, action="alias.delete",
                               target=f"{name}@{alias}", detail={"version": row.version})

    async def set_traffic(self, name: str, *, canary_version: str | None, canary_percent: float,
                          shadow_version: str | None, by: Actor | None = None) -> None:
        """Set (or clear, with None) the canary split and the shadow version of a model."""
        async with self._session() as session:
            model = await self._model(session, name, lock=True)
            for version in (canary_version, shadow_version):
                if version is not None:
                    await self._require_version(session, model, version)
            row = await session.get(ModelTraffic, model.id)
            if row is None:
                row = ModelTraffic(model_id=model.id)
                session.add(row)
            row.canary_version = canary_version
            row.canary_percent = canary_percent if canary_version else 0.0
            row.shadow_version = shadow_version
            await self._change(session, name, f"traffic canary={canary_version}@{canary_percent} "
                                              f"shadow={shadow_version}", by, action="traffic.set", target=name,
                               detail={"canary_version": canary_version, "canary_percent": row.canary_percent,
                                       "shadow_version": shadow_version})

    async def update_model(self, name: str, *, log_sample_rate: float | None = None,
                           description: str | None = None, by: Actor | None = None) -> None:
        """Change the model's tensor sample rate of the prediction log and/or its description."""
        async with self._session() as session:
            model = await self._model(session, name)
            if log_sample_rate is not None:
                model.log_sample_rate = log_sample_rate
            if description is not None:
                model.description = description
            await self._change(session, name, "settings", by, action="model.update", target=name,
                               detail={"log_sample_rate": log_sample_rate,
                                       "description": None if description is None else "changed"})
