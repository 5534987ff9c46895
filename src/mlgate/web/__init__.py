"""The web side of mlgate: API docs that work offline, the per-model OpenAPI routes, and the playground.

``install_web(app)`` adds ``/docs``, ``/redoc`` (assets from the ``fastapi-offline`` package) and the
playground at ``/ui/``; ``ModelSchemas`` (``web.openapi``) adds each model's typed inference route to
``/openapi.json``.
"""

from __future__ import annotations

from fastapi import FastAPI

from mlgate.web.docs import install_docs
from mlgate.web.playground import install_playground

__all__ = ["install_web"]


def install_web(app: FastAPI) -> None:
    """Add the docs and the playground to ``app`` (built with ``docs_url=None, redoc_url=None``)."""
    install_docs(app)
    install_playground(app)
