"""Read-only sqladmin views of the tables: lists with search, sorting and filters, and detail pages.

No view here can create, edit, delete, import or export: every change goes through the admin's own pages
(``identities``, ``rollouts``), which call ``AuthStore`` and ``ControlPlane`` so that passwords are hashed,
keys shown once, changes audited and rollouts warmed. Secrets (password hashes, key hashes) are never shown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from fastapi import Request
from sqladmin import ModelView
from sqladmin.filters import BooleanFilter, OperationColumnFilter
from sqlalchemy import Select
from starlette.exceptions import HTTPException

from mlgate.db.tables.audit import AuditEntry
from mlgate.db.tables.catalog import AliasHistory, ModelAlias, ModelTraffic, ModelVersionRecord, RegistryChange
from mlgate.db.tables.identity import ApiKey, Group, User
from mlgate.db.tables.jobs import JobRecord
from mlgate.db.tables.predlog import PredictionRecord
from mlgate.web.admin.access import DEPLOYERS, RoleGate
from mlgate.web.admin.filters import RecentFilter

__all__ = ["TABLE_VIEWS", "when"]


def when(value: datetime | None, missing: str = "") -> str:
    """A time as the admin shows it: ``2026-12-06 11:42:55 UTC`` (to the second, in UTC), or ``missing``."""
    if value is None:
        return missing
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


class ReadOnly(RoleGate, ModelView):
    """A read-only table view: no create, edit, delete, export or import; changes go through our pages."""
    # Times to the second in UTC, not Python's repr (11:42:55.683652+00:00).
    column_type_formatters: ClassVar[Any] = {**ModelView.column_type_formatters, datetime: when}
    column_type_formatters_detail: ClassVar[Any] = {**ModelView.column_type_formatters_detail, datetime: when}
    can_create = False
    can_edit = False
    can_delete = False
    can_export = False
    can_import = False
    page_size = 25
    page_size_options: ClassVar[list[int]] = [25, 50, 100]
    category = "Tables"

    def details_query(self, request: Request) -> Select[Any]:
        """sqladmin's row query, with a 404 for an id that is not a number."""
        try:
            query: Select[Any] = super().details_query(request)
        except ValueError:  # sqladmin converts the id in the address without checking it
            raise HTTPException(404, "No such row.") from None
        return query

    async def get_object_filepath(self, identifier: str, column_name: str) -> Path:
        # sqladmin would serve any file under the working directory named by a column's text (a key's name,
        # a request id); none of our columns is a file.
        """Never a file: 404 (sqladmin would serve a path named by a column's text)."""
        raise HTTPException(404, "No files here.")


class UserTable(ReadOnly, model=User):
    """Users (password hashes never shown)."""
    name, name_plural, icon = "User", "Users", "fa-solid fa-user"
    column_list: ClassVar[Any] = [User.id, User.username, User.role, User.is_active, User.created_at]
    column_details_exclude_list: ClassVar[Any] = [User.password_hash]
    column_searchable_list: ClassVar[Any] = [User.username]
    column_sortable_list: ClassVar[Any] = [User.id, User.username, User.role, User.created_at]
    column_filters: ClassVar[Any] = [OperationColumnFilter(User.role), BooleanFilter(User.is_active)]


class GroupTable(ReadOnly, model=Group):
    """Groups and the models they grant."""
    name, name_plural, icon = "Group", "Groups", "fa-solid fa-users"
    column_list: ClassVar[Any] = [Group.id, Group.name, Group.models, Group.created_at]
    column_searchable_list: ClassVar[Any] = [Group.name]


class KeyTable(ReadOnly, model=ApiKey):
    """API keys (prefixes and scopes; secrets are never stored)."""
    name, name_plural, icon = "API key", "API keys", "fa-solid fa-key"
    column_list: ClassVar[Any] = [ApiKey.id, ApiKey.prefix, ApiKey.name, ApiKey.user_id, ApiKey.models,
                                  ApiKey.actions, ApiKey.tier, ApiKey.created_at, ApiKey.expires_at,
                                  ApiKey.revoked_at, ApiKey.last_used_at]
    column_details_exclude_list: ClassVar[Any] = [ApiKey.secret_hash]
    column_searchable_list: ClassVar[Any] = [ApiKey.prefix, ApiKey.name]
    column_sortable_list: ClassVar[Any] = [ApiKey.id, ApiKey.created_at, ApiKey.last_used_at]


class VersionTable(ReadOnly, model=ModelVersionRecord):
    """The catalog's model versions."""
    roles = DEPLOYERS
    name, name_plural, icon = "Model version", "Model versions", "fa-solid fa-cubes"
    column_list: ClassVar[Any] = [ModelVersionRecord.id, ModelVersionRecord.model_id, ModelVersionRecord.version,
                                  ModelVersionRecord.runtime, ModelVersionRecord.size_bytes,
                                  ModelVersionRecord.checksum, ModelVersionRecord.created_by,
                                  ModelVersionRecord.created_at]
    column_sortable_list: ClassVar[Any] = [ModelVersionRecord.id, ModelVersionRecord.created_at]
    column_filters: ClassVar[Any] = [OperationColumnFilter(ModelVersionRecord.version)]


class AliasTable(ReadOnly, model=ModelAlias):
    """The catalog's aliases."""
    roles = DEPLOYERS
    name, name_plural, icon = "Alias", "Aliases", "fa-solid fa-tag"
    column_list: ClassVar[Any] = [ModelAlias.model_id, ModelAlias.alias, ModelAlias.version, ModelAlias.updated_at]


class AliasHistoryTable(ReadOnly, model=AliasHistory):
    """Where aliases pointed before."""
    roles = DEPLOYERS
    name, name_plural, icon = "Alias move", "Alias history", "fa-solid fa-clock-rotate-left"
    column_list: ClassVar[Any] = [AliasHistory.id, AliasHistory.model_id, AliasHistory.alias,
                                  AliasHistory.version, AliasHistory.changed_by, AliasHistory.at]
    column_default_sort: ClassVar[Any] = (AliasHistory.id, True)


class TrafficTable(ReadOnly, model=ModelTraffic):
    """Canary and shadow settings per model."""
    roles = DEPLOYERS
    name, name_plural, icon = "Traffic", "Traffic", "fa-solid fa-shuffle"
    column_list: ClassVar[Any] = [ModelTraffic.model_id, ModelTraffic.canary_version, ModelTraffic.canary_percent,
                                  ModelTraffic.shadow_version, ModelTraffic.updated_at]


class ChangeTable(ReadOnly, model=RegistryChange):
    """The registry change log that replicas follow."""
    roles = DEPLOYERS
    name, name_plural, icon = "Registry change", "Registry changes", "fa-solid fa-list"
    column_list: ClassVar[Any] = [RegistryChange.id, RegistryChange.at, RegistryChange.model, RegistryChange.what,
                                  RegistryChange.by]
    column_default_sort: ClassVar[Any] = (RegistryChange.id, True)
    column_filters: ClassVar[Any] = [OperationColumnFilter(RegistryChange.model),
                                     OperationColumnFilter(RegistryChange.by)]


class PredictionTable(ReadOnly, model=PredictionRecord):
    """The prediction log, newest first, filterable by time."""
    roles = DEPLOYERS
    category = "Logs"
    name, name_plural, icon = "Prediction", "Prediction log", "fa-solid fa-bolt"
    column_list: ClassVar[Any] = [PredictionRecord.id, PredictionRecord.at, PredictionRecord.model,
                                  PredictionRecord.version, PredictionRecord.caller, PredictionRecord.status,
                                  PredictionRecord.error_code, PredictionRecord.latency_ms,
                                  PredictionRecord.batch_size, PredictionRecord.shadow, PredictionRecord.request_id]
    # The log stores an anonymous caller as NULL; show it as the REST API and the usage report name it.
    column_formatters: ClassVar[Any] = {PredictionRecord.caller: lambda m, a: m.caller or "anonymous"}
    column_formatters_detail: ClassVar[Any] = {PredictionRecord.caller: lambda m, a: m.caller or "anonymous"}
    column_default_sort: ClassVar[Any] = (PredictionRecord.id, True)
    column_sortable_list: ClassVar[Any] = [PredictionRecord.id, PredictionRecord.at, PredictionRecord.latency_ms,
                                           PredictionRecord.status]
    column_searchable_list: ClassVar[Any] = [PredictionRecord.request_id]
    column_filters: ClassVar[Any] = [RecentFilter(PredictionRecord.at),
                                     OperationColumnFilter(PredictionRecord.model),
                                     OperationColumnFilter(PredictionRecord.version),
                                     OperationColumnFilter(PredictionRecord.status),
                                     OperationColumnFilter(PredictionRecord.caller),
                                     OperationColumnFilter(PredictionRecord.error_code),
                                     BooleanFilter(PredictionRecord.shadow)]


class AuditTable(ReadOnly, model=AuditEntry):
    """The audit log of changes: who, what, when."""
    category = "Logs"
    name, name_plural, icon = "Audit entry", "Audit log", "fa-solid fa-shield-halved"
    column_list: ClassVar[Any] = [AuditEntry.id, AuditEntry.at, AuditEntry.actor, AuditEntry.action,
                                  AuditEntry.target, AuditEntry.client, AuditEntry.detail]
    column_default_sort: ClassVar[Any] = (AuditEntry.id, True)
    column_searchable_list: ClassVar[Any] = [AuditEntry.target]
    column_filters: ClassVar[Any] = [RecentFilter(AuditEntry.at), OperationColumnFilter(AuditEntry.actor),
                                     OperationColumnFilter(AuditEntry.action)]


class JobTable(ReadOnly, model=JobRecord):
    """Inference jobs (admins only); their requests and results are callers' data, served by the jobs API to
    their owners, and not shown here."""

    category = "Logs"
    name, name_plural, icon = "Job", "Jobs", "fa-solid fa-hourglass-half"
    column_list: ClassVar[Any] = [JobRecord.seq, JobRecord.id, JobRecord.status, JobRecord.model, JobRecord.version,
                                  JobRecord.protocol, JobRecord.owner, JobRecord.progress, JobRecord.attempts,
                                  JobRecord.runner, JobRecord.created_at, JobRecord.finished_at]
    column_details_exclude_list: ClassVar[Any] = [JobRecord.request, JobRecord.result]
    column_default_sort: ClassVar[Any] = (JobRecord.seq, True)
    column_sortable_list: ClassVar[Any] = [JobRecord.seq, JobRecord.created_at, JobRecord.status]
    column_searchable_list: ClassVar[Any] = [JobRecord.id]
    column_filters: ClassVar[Any] = [RecentFilter(JobRecord.created_at), OperationColumnFilter(JobRecord.status),
                                     OperationColumnFilter(JobRecord.model), OperationColumnFilter(JobRecord.owner)]


TABLE_VIEWS: tuple[type[ModelView], ...] = (
    UserTable, GroupTable, KeyTable, VersionTable, AliasTable, AliasHistoryTable, TrafficTable, ChangeTable,
    PredictionTable, AuditTable, JobTable)
