"""Custom Python models: a class in a ``.py`` file of the model directory.

The manifest's ``artifact`` is the file and ``parameters.class_name`` the class (default ``Model``). The class
is built with no arguments, then::

    load()                       # once; read weights relative to Path(__file__).parent
    predict(batch) -> outputs    # {input name: np.ndarray [batch, ...]} -> {output name: [batch, ...]}

``predict`` may also take a second argument, the request's ``parameters``, and a third, ``progress``: a
callable taking a float from 0 to 1 that a job shows as its progress (a no-op for synchronous requests)::

    def predict(self, batch, parameters, progress):
        for i, chunk in enumerate(chunks):
            ...
            progress((i + 1) / len(chunks))

The manifest must declare the inputs and outputs. Security: the file runs with the server's rights; serve only
code you trust.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlgate.errors import ModelLoadError
from mlgate.runtimes.base import Batch, Runtime, split_progress

__all__ = ["PythonRuntime"]


def _no_progress(value: float) -> None:
    """The progress callback of a request that is not a job: nobody is watching."""


class PythonRuntime(Runtime):
    """``runtime = "python"``: a ``model.py`` of the author's defining ``load(directory)`` and
    ``predict(model, inputs[, progress])``; runs with the server's rights.
    """
    name = "python"
    platform = "python"

    def load(self) -> None:
        if not self.inputs or not self.outputs:
            raise ModelLoadError("the python runtime needs [[inputs]] and [[outputs]] in model.toml")
        path = self.artifact_path
        safe = re.sub(r"\W", "_", f"{self.manifest.name}_{self.manifest.version}")
        module_name = f"mlgate_models.{safe}"
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
        class_name = str(self.manifest.parameters.get("class_name", "Model"))
        cls = getattr(module, class_name, None)
        if cls is None or not callable(getattr(cls, "predict", None)):
            raise ModelLoadError(f"{path.name} has no class {class_name!r} with a predict() method")
        self.model = cls()
        if callable(getattr(self.model, "load", None)):
            self.model.load()
        arguments = len(inspect.signature(self.model.predict).parameters)
        self._takes_parameters, self._takes_progress = arguments >= 2, arguments >= 3

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        parameters, progress = split_progress(parameters)
        if self._takes_progress:
            result = self.model.predict(batch, parameters, progress or _no_progress)
        elif self._takes_parameters:
            result = self.model.predict(batch, parameters)
        else:
            result = self.model.predict(batch)
        if not isinstance(result, Mapping):
            raise TypeError(f"predict() returned {type(result).__name__}, expected a dict of arrays")
        return {name: np.asarray(value) for name, value in result.items()}

    def unload(self) -> None:
        unload = getattr(getattr(self, "model", None), "unload", None)
        if callable(unload):
            unload()
