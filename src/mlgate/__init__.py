"""mlgate: serve trained machine-learning models over the KServe V2 and V1 REST protocols."""

import typing as _typing

from mlgate.errors import MlgateError
from mlgate.model.manifest import BatchingConfig, ImagePreprocessing, ModelManifest, TensorSpec
from mlgate.runtimes.base import Runtime

if _typing.TYPE_CHECKING:
    from mlgate.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "BatchingConfig",
    "ImagePreprocessing",
    "MlgateError",
    "ModelManifest",
    "Runtime",
    "Settings",
    "TensorSpec",
    "__version__",
]


def __getattr__(name: str) -> object:
    # Settings is imported on first use: a worker process (mlgate.workers.main) never reads the settings, and
    # pydantic-settings costs it ~5 MiB of RSS (benchmarks/RESULTS.md, memory).
    if name == "Settings":
        from mlgate.settings import Settings

        return Settings
    raise AttributeError(f"module 'mlgate' has no attribute {name!r}")
