"""What the framework runtimes share: importing an optional framework, the ``device`` a model asks for,
thread counts, and the V2 signature of framework tensors.

An optional framework that is not installed makes the model not ready with the ``pip install`` line that
installs it (``require``); a CUDA device that is not there makes it not ready with that reason
(``torch_device``), never a crash.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import numpy as np

from mlgate.datatypes import datatype_of
from mlgate.errors import ModelLoadError
from mlgate.model.manifest import TensorSpec

__all__ = ["INSTALL", "cuda_index", "import_file", "positive_int", "require", "shape_of", "spec_of", "torch_device"]

TORCH_FIRST = "pip install torch==2.13.0 && "
INSTALL: dict[str, str] = {
    "keras": TORCH_FIRST + "pip install -c constraints.txt 'mlgate[keras]'",
    "torch": "pip install torch==2.13.0",
    "tensorflow": "pip install -c constraints.txt 'mlgate[tensorflow]'",
    "jax": "pip install -c constraints.txt 'mlgate[jax]'",
    "xgboost": "pip install -c constraints.txt 'mlgate[xgboost]'",
    "lightgbm": "pip install -c constraints.txt 'mlgate[lightgbm]'",
    "transformers": TORCH_FIRST + "pip install -c constraints.txt 'mlgate[transformers]'",
}
"""Runtime extra -> the command that installs it (torch first from its CPU build, as `make install` does)."""

_DEVICE = re.compile(r"^cuda(?::(\d+))?$")


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``; ModelLoadError with the install command of ``extra`` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelLoadError(f"the model needs the Python module {module!r} (extra {extra!r}), which is not installed "
                             f"({exc}); install it with: {INSTALL[extra]}") from exc


def cuda_index(device: str) -> int | None:
    """``"cpu"`` -> None; ``"cuda"`` -> 0; ``"cuda:N"`` -> N (the manifest checked the spelling)."""
    match = _DEVICE.match(device)
    if match is None:
        return None
    return int(match.group(1) or 0)


def torch_device(device: str) -> Any:
    """The ``torch.device`` for a manifest's ``device``; ModelLoadError when that CUDA device is not there."""
    torch = require("torch", "torch")
    index = cuda_index(device)
    if index is None:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but PyTorch sees no CUDA device here "
                             "(torch.cuda.is_available() is False); set device = \"cpu\" or serve it on a GPU machine")
    count = torch.cuda.device_count()
    if index >= count:
        raise ModelLoadError(f"device {device!r} asked for, but PyTorch sees {count} CUDA device(s)")
    return torch.device("cuda", index)


def positive_int(params: Mapping[str, Any], key: str) -> int | None:
    """``parameters[key]`` as a positive int, None when absent; ModelLoadError otherwise."""
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelLoadError(f"parameters.{key} must be a positive integer, got {value!r}")
    return value


def shape_of(dims: Iterable[Any]) -> tuple[int, ...]:
    """Framework dimensions -> V2 shape: None, symbolic or negative dimensions become ``-1``."""
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in dims)


def spec_of(name: str, dtype: Any, dims: Iterable[Any]) -> TensorSpec:
    """A TensorSpec from a framework tensor's name, dtype (anything ``np.dtype`` takes) and dimensions."""
    try:
        datatype = datatype_of(np.dtype(dtype))
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"tensor {name!r} has dtype {dtype}, which has no V2 datatype") from exc
    shape = shape_of(dims)
    return TensorSpec(name=name, datatype=datatype, shape=shape or (-1,))


def import_file(path: Any, module_name: str) -> ModuleType:
    """Import a ``.py`` file of a model directory as ``module_name``; ModelLoadError when it fails.

    Security: this runs the file's code with the server's rights, like unpickling; serve only code you trust.
    """
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{path.name} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ModelLoadError(f"importing {path.name} failed: {type(exc).__name__}: {exc}") from exc
    return module
