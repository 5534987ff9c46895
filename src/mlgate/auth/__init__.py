"""Identities and permissions: users, groups, API keys, access tokens, and the policy over models.

Transport-free: ``mlgate.protocols.security`` applies it to HTTP requests (authenticate -> authorize ->
rate limit). Start with ``Caller`` and ``Action`` (what a route asks for), ``Policy`` (the decisions) and
``AuthStore`` (the database side, audited).
"""

from mlgate.auth.caller import ROLE_ACTIONS, Action, Caller, CallerKind, Role
from mlgate.auth.policy import CODE_EXECUTING_SUFFIXES, ModelPolicy, Policy
from mlgate.auth.service import SecurityService, build_security
from mlgate.auth.store import Actor, AuthStore, KeyInfo, UserInfo

__all__ = [
    "CODE_EXECUTING_SUFFIXES",
    "ROLE_ACTIONS",
    "Action",
    "Actor",
    "AuthStore",
    "Caller",
    "CallerKind",
    "KeyInfo",
    "ModelPolicy",
    "Policy",
    "Role",
    "SecurityService",
    "UserInfo",
    "build_security",
]
