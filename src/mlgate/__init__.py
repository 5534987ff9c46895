"""mlgate: serve trained machine-learning models over the KServe V2 and V1 REST protocols."""

from mlgate.errors import MlgateError
from mlgate.manifest import BatchingConfig, ImagePreprocessing, ModelManifest, TensorSpec
from mlgate.runtimes.base import Runtime
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
