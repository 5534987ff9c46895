"""What every admin page needs from the main app: its security, control plane and database, and who is signed in.

Views are built per app (``install_admin``) and reach the app through ``AdminContext``; they never hold
their own engine or settings. ``signed_in(request)`` is the user the session belongs to, set by
``SessionAuth.authenticate`` on every request (read from the database each time, so a demoted or
deactivated user loses access at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession

from mlgate.auth import Actor, AuthStore, Role, SecurityService, UserInfo
from mlgate.catalog.control import ControlPlane
from mlgate.db.engine import Database
from mlgate.protocols.security import client_address
from mlgate.protocols.state import ServerState, request_state, server_state
from mlgate.settings import Settings

__all__ = ["ADMIN_ROLES", "AdminContext", "LazySessions", "actor_of", "signed_in"]

ADMIN_ROLES = frozenset({Role.ADMIN, Role.DEPLOYER})
"""Roles that may sign in: admins see everything, deployers the model pages and the prediction log."""



@dataclass(frozen=True)
class AdminContext:
    """What the admin's views reach: the app (its ``ServerState``, once the lifespan ran) and the settings."""
    app: FastAPI
    settings: Settings

    @property
    def security(self) -> SecurityService:
        """The app's security service."""
        return self._server.security

    @property
    def store(self) -> AuthStore:
        """The identity store (users, groups, keys)."""
        return self.security.store

    @property
    def control(self) -> ControlPlane:
        """The catalog's control plane."""
        return self._server.control

    @property
    def database(self) -> Database:
        """The app's database."""
        return self._server.database

    @property
    def _server(self) -> ServerState:
        return server_state(self)


class LazySessions:
    """A session factory for sqladmin that opens sessions on the app's ``Database`` (made in the lifespan,
    after the admin is mounted). Read-only use: the admin's changes go through ``AuthStore``/``ControlPlane``."""

    class_ = AsyncSession

    def __init__(self, context: AdminContext) -> None:
        self.context = context

    def configure(self, **options: Any) -> None:
        """sqladmin sets autoflush/autocommit off; our sessions already behave that way."""

    def __call__(self, **options: Any) -> AsyncSession:
        return self.context.database.sessions(**options)


def signed_in(request: Request) -> UserInfo | None:
    """The signed-in user of this admin request (None before ``authenticate`` ran or without a session)."""
    return request_state(request).admin_user


def set_signed_in(request: Request, user: UserInfo) -> None:
    """Remember the admin session's user for the rest of this request."""
    request_state(request).admin_user = user


def actor_of(request: Request) -> Actor:
    """The audit ``Actor`` of an admin request: ``user:<name>``, the client address and the request id."""
    user = signed_in(request)
    return Actor(f"user:{user.username}" if user else "anonymous", client=client_address(request),
                 request_id=request_state(request).request_id or None)
