"""Who may see which admin view: each view names its roles, checked on the server for every request.

``RoleGate`` is mixed into every view (sqladmin's tables and our pages): sqladmin calls ``is_accessible``
before each of its routes (403 when false) and ``is_visible`` for the menu; our own routes call
``require(request, roles)`` as well. Admins may use everything; deployers the model pages and the prediction log.
"""

from __future__ import annotations

from typing import ClassVar

from fastapi import Request
from starlette.exceptions import HTTPException

from mlgate.auth import Role, UserInfo
from mlgate.web.admin.context import signed_in

__all__ = ["ADMIN_ONLY", "DEPLOYERS", "RoleGate", "require"]

ADMIN_ONLY = frozenset({Role.ADMIN})
DEPLOYERS = frozenset({Role.ADMIN, Role.DEPLOYER})


def require(request: Request, roles: frozenset[Role]) -> UserInfo:
    """The signed-in user if their role is one of ``roles``; else 403 (the admin's error page)."""
    user = signed_in(request)
    if user is None or user.role not in roles:
        raise HTTPException(403, "Your role may not use this admin page.")
    return user


class RoleGate:
    """sqladmin's access hooks for a view: the signed-in admin user's role must be in ``roles``."""
    roles: ClassVar[frozenset[Role]] = ADMIN_ONLY

    def is_accessible(self, request: Request) -> bool:
        """Whether the signed-in user may open this view."""
        user = signed_in(request)
        return user is not None and user.role in self.roles

    def is_visible(self, request: Request) -> bool:
        """Whether the view is in the menu: only for users who may open it."""
        return self.is_accessible(request)
