"""Keras 3 models as saved by ``model.save("model.keras")``, on the backend the manifest names.

The artifact is the ``.keras`` file. Manifest ``parameters``:

- ``backend``: ``"torch"`` (default, or the ``KERAS_BACKEND`` environment variable when set), ``"tensorflow"``
  or ``"jax"`` (untested in CI; without jax installed the model is not ready with the ``pip install`` line).
  A ``.keras`` file holds no backend code, so a model saved on TensorFlow is served on PyTorch with the same
  answers. Keras picks its backend once per process: a model asking for another backend than
  the server process's runs in a worker process of its own (``instances = 1``), without any manifest change.
- ``custom_objects``: a ``.py`` file of the model directory defining the model's custom layers, losses or
  functions (classes registered with ``keras.saving.register_keras_serializable`` register when the file is
  imported; every class and function the file defines is passed as ``custom_objects``). Security: this runs
  the author's code with the server's rights, like unpickling; serve only code you trust.
- ``threads``: the backend's intra-op threads, per process (PyTorch's ``torch.set_num_threads``,
  TensorFlow's intra-op parallelism; not for JAX): give each instance its own with ``instances >= 1``. On a
  small or busy machine ``threads = 1`` spares each op waiting for a descheduled second thread (in
  benchmarks/RESULTS.md, digits-cnn over V2 answered 2.4x the requests with one PyTorch thread per process).
- ``safe_mode`` (default true): a ``Lambda`` layer made from a Python ``lambda`` stores that function's
  bytecode in the file, which Keras would run when loading. With ``safe_mode`` true such a file is not served
  (the model is not ready, and a push of it is refused with a 400), naming the layers and the manifest line
  that opts in; ``safe_mode = false`` runs that code, with the same warning as ``custom_objects``.

Inputs and outputs the manifest leaves out are read from the model: each ``keras.Input``'s name, dtype and
shape (``None`` dimensions become ``-1``), and the outputs' names (``model.output_names``, the names of the
layers that make them) with their dtypes and shapes. Functional models with several inputs and outputs are
fed and answered by name. Subclassed models that were never built have no signature: declare it.

``device`` (manifest): ``cpu`` (default), ``cuda`` or ``cuda:N``; a CUDA device that is not there leaves the
model not ready with that reason. Needs the ``keras`` extra.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from mlgate.errors import ModelLoadError
from mlgate.runtimes.base import Batch, Runtime
from mlgate.runtimes.support import cuda_index, import_file, positive_int, require, spec_of, torch_device

__all__ = ["KerasRuntime", "code_layers", "safe_mode_of", "unsafe_reason"]

log = structlog.get_logger("mlgate.runtimes.keras")

BACKENDS = ("torch", "tensorflow", "jax")

_CONFIG_MAX_BYTES = 64 * 1024 * 1024
"""The largest ``config.json`` read when looking for stored code (a model's architecture, not its weights)."""


def code_layers(path: Path) -> list[str]:
    """Names of the layers of a ``.keras`` file that hold Python bytecode (``Lambda`` layers made from a
    ``lambda``, serialized as ``__lambda__``), which Keras runs when loading with ``safe_mode=False``.

    Reads only the archive's ``config.json``; no Keras import. Nested models are searched too. Raises
    ModelLoadError when the file is not a ``.keras`` archive with a readable ``config.json``.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > _CONFIG_MAX_BYTES:
                raise ModelLoadError(f"{path.name}: config.json is {info.file_size} bytes, over "
                                     f"{_CONFIG_MAX_BYTES}")
            config = json.loads(archive.read(info))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ModelLoadError(f"Keras could not load {path.name}: not a .keras archive with a config.json "
                             f"({type(exc).__name__}: {exc})") from exc
    found: list[str] = []

    def walk(node: Any, layer: str) -> None:
        if isinstance(node, dict):
            inner = node.get("config")
            if isinstance(inner, dict) and isinstance(inner.get("name"), str) and "class_name" in node:
                layer = inner["name"]
            if node.get("class_name") == "__lambda__" and layer not in found:
                found.append(layer)
            for value in node.values():
                walk(value, layer)
        elif isinstance(node, list):
            for value in node:
                walk(value, layer)

    walk(config, "?")
    return found


def safe_mode_of(parameters: Mapping[str, Any]) -> bool:
    """The manifest's ``parameters.safe_mode`` (default true); ModelLoadError when it is not a boolean."""
    safe_mode = parameters.get("safe_mode", True)
    if not isinstance(safe_mode, bool):
        raise ModelLoadError(f"parameters.safe_mode must be true or false, got {safe_mode!r}")
    return safe_mode


def unsafe_reason(path: Path, parameters: Mapping[str, Any]) -> str | None:
    """Why a ``.keras`` file cannot be served as its manifest stands: it stores Python code (a ``Lambda``
    layer's ``lambda``) and the manifest did not opt in with ``safe_mode = false``. None when it can.

    Raises ModelLoadError for an unreadable file or a ``safe_mode`` that is not a boolean.
    """
    if not safe_mode_of(parameters):
        return None
    layers = code_layers(path)
    if not layers:
        return None
    return (f"{path.name} stores Python code in Lambda layer(s) {', '.join(repr(n) for n in layers)}, which "
            "Keras runs when loading it; it is refused in safe mode. If you trust the file's author, set "
            "safe_mode = false under [parameters] in model.toml (this runs that code with the server's rights)")


def process_backend() -> str:
    """The Keras backend of this process: the imported one, else the one it would import (default torch)."""
    keras = sys.modules.get("keras")
    if keras is not None:
        return str(keras.backend.backend())
    return os.environ.get("KERAS_BACKEND") or "torch"


class KerasRuntime(Runtime):
    """``runtime = "keras"``: a Keras 3 ``.keras`` file on the installed backend (PyTorch by default;
    ``[parameters] backend`` picks TensorFlow or JAX), its inputs and outputs read from the model when the
    manifest omits them. A model on another backend than the server's runs in a worker process of its own.
    """
    name = "keras"
    platform = "keras"
    cuda = True

    @property
    def backend(self) -> str:
        """The Keras backend this model runs on (``torch``, ``tensorflow`` or ``jax``)."""
        backend = self.manifest.parameters.get("backend") or os.environ.get("KERAS_BACKEND") or "torch"
        if backend not in BACKENDS:
            raise ModelLoadError(f"parameters.backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        return str(backend)

    def own_process(self) -> str | None:
        """Whether the model needs a worker process of its own (its backend is not the server process's)."""
        wanted, here = self.backend, process_backend()
        return None if wanted == here else f"Keras backend {wanted!r}, the server process's is {here!r}"

    def load(self) -> None:
        backend = self.backend
        if "keras" not in sys.modules:
            os.environ["KERAS_BACKEND"] = backend  # read once, when keras is first imported
        if backend == "torch":
            require("torch", "keras")
        elif backend == "tensorflow":
            require("tensorflow", "tensorflow")
        else:
            require("jax", "jax")  # before keras: Keras on a missing JAX fails with a less useful message
        keras = require("keras", "keras")
        if keras.backend.backend() != backend:
            raise ModelLoadError(f"this process runs Keras on {keras.backend.backend()!r}, the model asks for "
                                 f"{backend!r}; serve it with instances >= 1 (a worker process of its own)")
        self._set_threads(backend, positive_int(self.manifest.parameters, "threads"))
        path = self.artifact_path
        params = self.manifest.parameters
        custom_objects = self._custom_objects(keras, params.get("custom_objects"))
        reason = unsafe_reason(path, params) if path.suffix == ".keras" else None  # legacy .h5: Keras' own check
        if reason is not None:
            raise ModelLoadError(reason)
        safe_mode = safe_mode_of(params)
        if not safe_mode:
            log.warning("loading a Keras file with safe_mode = false: this runs the Python code stored in its "
                        "Lambda layers with the server's rights", model=self.manifest.name, file=path.name)
        self._device = self._keras_device(backend)
        try:
            with keras.device(self._device):
                model = keras.saving.load_model(path, custom_objects=custom_objects, compile=False,
                                                safe_mode=safe_mode)
        except (ValueError, TypeError, OSError, KeyError, AttributeError) as exc:  # Keras' errors for bad files
            raise ModelLoadError(f"Keras could not load {path.name}: {type(exc).__name__}: {exc}") from exc
        self.model = model
        self._keras = keras
        try:
            model_inputs = list(model.inputs)
            model_outputs = list(model.outputs)
        except (AttributeError, ValueError):  # a subclassed model that was never called has neither
            model_inputs, model_outputs = [], []
        if not self.inputs:
            if not model_inputs:
                raise ModelLoadError(f"{path.name}: the model records no inputs (a subclassed model?); declare "
                                     "[[inputs]] in model.toml")
            self.inputs = tuple(spec_of(t.name, t.dtype, t.shape) for t in model_inputs)
        if not self.outputs:
            if not model_outputs:
                raise ModelLoadError(f"{path.name}: the model records no outputs; declare [[outputs]] in model.toml")
            names = list(getattr(model, "output_names", None) or [t.name for t in model_outputs])
            self.outputs = tuple(spec_of(n, t.dtype, t.shape) for n, t in zip(names, model_outputs, strict=True))
        self._input_names = [spec.name for spec in self.inputs]
        self._output_names = [spec.name for spec in self.outputs]
        known = {t.name for t in model_inputs}
        if known and not set(self._input_names) <= known and len(self._input_names) > 1:
            raise ModelLoadError(f"manifest inputs {self._input_names} are not the model's inputs ({sorted(known)})")

    @staticmethod
    def _set_threads(backend: str, threads: int | None) -> None:
        if threads is None:
            return
        if backend == "torch":
            require("torch", "keras").set_num_threads(threads)
        elif backend == "tensorflow":
            tf = require("tensorflow", "tensorflow")
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
            except RuntimeError as exc:  # TensorFlow already ran something in this process
                raise ModelLoadError(f"parameters.threads: {exc}; serve the model with instances >= 1") from exc
        else:
            raise ModelLoadError("parameters.threads is for the torch and tensorflow backends; for JAX set "
                                 "XLA_FLAGS in the server's environment")

    def _custom_objects(self, keras: Any, filename: object) -> dict[str, Any] | None:
        if filename is None:
            return None
        if not isinstance(filename, str) or not filename.endswith(".py"):
            raise ModelLoadError(f"parameters.custom_objects must name a .py file of the model directory, got "
                                 f"{filename!r}")
        path = self.model_dir / filename
        if not path.is_file() or self.model_dir.resolve() not in path.resolve().parents:
            raise ModelLoadError(f"parameters.custom_objects: {filename!r} is not a file of {self.model_dir}")
        log.warning("importing custom Keras objects: this runs the model author's code with the server's rights",
                    model=self.manifest.name, file=str(path))
        safe = re.sub(r"\W", "_", f"{self.manifest.name}_{self.manifest.version}")
        module = import_file(path, f"mlgate_models.keras_{safe}")
        return {name: obj for name, obj in vars(module).items()
                if callable(obj) and getattr(obj, "__module__", None) == module.__name__}

    def _keras_device(self, backend: str) -> str:
        device = self.manifest.device
        index = cuda_index(device)
        if backend == "torch":
            torch_device(device)  # ModelLoadError when that CUDA device is not there
            return "cpu" if index is None else f"cuda:{index}"
        if index is None:
            return "cpu:0"
        if backend == "tensorflow":
            tf = require("tensorflow", "tensorflow")
            gpus = tf.config.list_physical_devices("GPU")
            if index >= len(gpus):
                raise ModelLoadError(f"device {device!r} asked for, but TensorFlow sees {len(gpus)} GPU(s)")
        return f"gpu:{index}"

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        """Inputs by name (``[batch, ...]`` each) -> every output by name, ``[batch, ...]``."""
        if len(self._input_names) == 1:
            feed: Any = batch[self._input_names[0]]
        else:
            feed = {name: batch[name] for name in self._input_names}
        with self._keras.device(self._device):
            result = self.model.predict_on_batch(feed)
        if isinstance(result, Mapping):
            return {name: np.asarray(result[name]) for name in self._output_names if name in result}
        if isinstance(result, list | tuple):
            return {name: np.asarray(value) for name, value in zip(self._output_names, result, strict=True)}
        return {self._output_names[0]: np.asarray(result)}

    def unload(self) -> None:
        self.__dict__.pop("model", None)
