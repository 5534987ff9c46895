"""Give freed heap back to the system after loading models.

Loading a model (reading the artifact, converting it, exporting an ONNX graph) peaks well above what the
loaded model keeps; glibc's allocator holds on to most of the difference. ``malloc_trim(3)`` returns the free
pages at the top and in the middle of the heap, so the resident set (RSS) is the model's, not its load's:
~30 MiB for the minilm worker (benchmarks/RESULTS.md, memory).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc

__all__ = ["release_freed_heap"]


def release_freed_heap() -> None:
    """Collect garbage, then return free heap pages to the system. A no-op where libc has no ``malloc_trim``."""
    gc.collect()
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).malloc_trim(0)
