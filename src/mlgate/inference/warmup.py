"""Warm-up: one request of zeros through a freshly loaded model, so its first real request is not the slow one.

The inference engine warms every model marked ``required`` in its manifest before the model counts as
ready (``mlgate.inference.engine``); rollouts warm every version before traffic moves to it
(``mlgate.catalog.rollouts``).
"""

from __future__ import annotations

import anyio
import numpy as np
import structlog

from mlgate.datatypes import NUMPY_DTYPES
from mlgate.inference.registry import ModelHandle

__all__ = ["WARM_TIMEOUT_S", "warm"]

WARM_TIMEOUT_S = 30.0
"""A warm-up request slower than this is abandoned (logged); loading goes on."""

log = structlog.get_logger("mlgate.inference.warmup")


async def warm(handle: ModelHandle) -> bool:
    """Send one row of zeros (shape ``[1, *dims]`` per input) through ``handle``'s executor.

    Skipped for inputs without a fixed shape or of type BYTES; a failure is logged, not raised (a model
    may refuse zeros and still be fine). Returns True when the model answered.
    """
    batch: dict[str, np.ndarray] = {}
    for spec in handle.inputs:
        dims = spec.shape[1:]
        if spec.datatype == "BYTES" or any(d < 0 for d in dims) or spec.datatype not in NUMPY_DTYPES:
            return False
        batch[spec.name] = np.zeros((1, *dims), dtype=NUMPY_DTYPES[spec.datatype])
    if not batch or handle.executor is None:
        return False
    try:
        with anyio.fail_after(WARM_TIMEOUT_S):
            await handle.executor(batch, {})
    except Exception as exc:  # noqa: BLE001 - warming is best effort (TimeoutError included)
        log.warning("warm-up request failed", model=handle.name, version=handle.version, error=str(exc)[:200])
        return False
    return True
