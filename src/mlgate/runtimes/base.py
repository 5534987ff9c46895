"""The Runtime contract: what a framework adapter implements so mlgate can serve its models.

Life cycle, all on a worker thread (never on the event loop)::

    runtime = RuntimeClass(manifest, model_dir)   # cheap: no framework import, no file I/O
    runtime.load()                                # once; import the framework, read the artifact
    runtime.predict(batch, parameters)            # many times, possibly from several threads
    runtime.unload()                              # once, at shutdown or unload

``predict`` is batch-first: every input array has the batch as its first dimension (``[batch, ...]``) and
every output array must have the same first dimension, row ``i`` answering input row ``i``. The dynamic
batcher relies on this to merge concurrent requests into one call and split the answers back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from mlgate.errors import ModelLoadError
from mlgate.model.manifest import ModelManifest, TensorSpec

__all__ = ["PROGRESS_PARAMETER", "Batch", "Executor", "Progress", "Runtime", "split_progress"]

Batch = Mapping[str, np.ndarray]
"""Input or output tensors by name, each ``[batch, ...]``. BYTES tensors are object arrays of bytes."""


Progress = Callable[[float], None]
"""Reports how far a long ``predict`` is, from 0 to 1 (a job shows it: ``GET /api/v1/jobs/{id}``). Cheap and
thread-safe: call it as often as you like from ``predict``'s thread; the last value wins."""

PROGRESS_PARAMETER = "mlgate.progress"
"""The key under which a job's ``Progress`` callback rides in ``parameters`` to the runtime (in-process
executors only). The batcher ignores it when merging, and hands a merged batch one callback telling every job."""


def split_progress(parameters: Mapping[str, Any]) -> tuple[Mapping[str, Any], Progress | None]:
    """``parameters`` without the progress callback, and the callback (None when there is none)."""
    progress = parameters.get(PROGRESS_PARAMETER)
    if progress is None:
        return parameters, None
    rest = {k: v for k, v in parameters.items() if k != PROGRESS_PARAMETER}
    return rest, progress if callable(progress) else None


class Executor(Protocol):
    """Runs one batch of a loaded model: ``{input: [batch, ...]}`` -> ``{output: [batch, ...]}``.

    What the data plane awaits (``ModelHandle.executor``): a thread calling ``Runtime.predict``, a pool of
    worker processes, or a dynamic batcher in front of either. ``close`` releases what it holds.
    """

    async def __call__(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch: ...

    async def close(self) -> None:
        """Release what the executor holds (threads, worker processes); called when the model unloads."""


class Runtime(ABC):
    """Adapter between one framework and mlgate. Subclass it, set ``name`` and ``platform``.

    ``inputs`` and ``outputs`` are the model's signature: the manifest's declaration, or, where the
    manifest leaves them out, what ``load()`` reads from the artifact. Requests are checked against it
    before ``predict`` is called, so ``predict`` sees only declared inputs of the declared datatype.
    """

    name: ClassVar[str]
    """The manifest's ``runtime = "..."`` value."""
    platform: ClassVar[str]
    """The V2 model metadata ``platform`` string."""
    cuda: ClassVar[bool] = False
    """Whether the runtime can run on a CUDA device (manifest ``device``); others are CPU only."""

    def __init__(self, manifest: ModelManifest, model_dir: Path) -> None:
        self.manifest = manifest
        self.model_dir = model_dir
        self.inputs: tuple[TensorSpec, ...] = manifest.inputs
        self.outputs: tuple[TensorSpec, ...] = manifest.outputs

    @property
    def artifact_path(self) -> Path:
        """The artifact file; raises ModelLoadError when it does not exist."""
        path = self.model_dir / self.manifest.artifact
        if not path.is_file():
            raise ModelLoadError(f"artifact {self.manifest.artifact!r} not found in {self.model_dir}")
        return path

    def own_process(self) -> str | None:
        """Why this model cannot run in the server process (None: it can), checked before loading.

        A model with a reason and ``instances = 0`` is run by one worker process instead. Keras picks its
        backend once per process: a model saved for another backend than the server's answers here.
        """
        return None

    @abstractmethod
    def load(self) -> None:
        """Read the artifact and fill in ``inputs``/``outputs`` the manifest left out.

        Raises ModelLoadError (or any exception, which the registry records as the reason).
        """

    @abstractmethod
    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        """Compute outputs for a batch: ``{input name: [batch, ...]}`` -> ``{output name: [batch, ...]}``.

        ``parameters`` are the request's ``parameters`` (V2), passed through untouched; empty when absent.
        When a job runs the request, they also hold its ``Progress`` callback under ``PROGRESS_PARAMETER``
        (``split_progress`` takes it out); a runtime that can tell how far it is may call it.
        May return more outputs than requested (the caller selects). Exceptions become a 500 for the
        caller and a log line with the traceback.
        """

    def unload(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release what ``load`` acquired. Default: nothing."""
