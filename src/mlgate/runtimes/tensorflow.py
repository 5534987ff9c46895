"""TensorFlow SavedModel directories: ``tf.saved_model.save`` and Keras ``model.export`` (TensorFlow backend).

The artifact is the SavedModel *directory* (``saved_model.pb`` and ``variables/``). One signature is served:
``serving_default``, or the one named by ``parameters.signature``. The signature is the model's V2
metadata when the manifest leaves it out: its inputs (keyword arguments) and outputs by name, with their
dtypes and shapes (``None`` dimensions become ``-1``), outputs sorted by name.
String inputs are BYTES. Each request calls the signature's concrete function once with every input.

Manifest: ``device`` (``cpu``, ``cuda``, ``cuda:N``: the Nth GPU TensorFlow sees; none there leaves the model
not ready), ``parameters.threads`` (TensorFlow's intra-op threads, per process: a thread count per instance
with ``instances >= 1``; it can only be set before TensorFlow runs anything in the process). Needs the
``tensorflow`` extra (the CPU build, ``tensorflow-cpu``). Loading imports TensorFlow, ~5 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlgate.errors import ModelLoadError
from mlgate.model.manifest import TensorSpec
from mlgate.runtimes.base import Batch, Runtime
from mlgate.runtimes.support import cuda_index, positive_int, require, spec_of

__all__ = ["TensorFlowRuntime"]


def _spec(name: str, tensor_spec: Any) -> TensorSpec:
    dims = tensor_spec.shape.as_list() if tensor_spec.shape.rank is not None else [-1]
    dtype = "object" if tensor_spec.dtype.name == "string" else tensor_spec.dtype.as_numpy_dtype
    return spec_of(name, dtype, dims)


class TensorFlowRuntime(Runtime):
    """``runtime = "tensorflow"``: a SavedModel directory; the ``serving_default`` signature (or the one the
    manifest names) becomes the model's V2 metadata.
    """
    name = "tensorflow"
    platform = "tensorflow_savedmodel"
    cuda = True

    def load(self) -> None:
        directory = self.model_dir / self.manifest.artifact
        if not (directory / "saved_model.pb").is_file():
            raise ModelLoadError(f"artifact {self.manifest.artifact!r} in {self.model_dir} is not a SavedModel "
                                 "directory (one holding saved_model.pb)")
        tf = require("tensorflow", "tensorflow")
        threads = positive_int(self.manifest.parameters, "threads")
        if threads is not None:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
            except RuntimeError as exc:  # TensorFlow already initialised in this process
                raise ModelLoadError(f"parameters.threads: {exc}; serve the model with instances >= 1") from exc
        index = cuda_index(self.manifest.device)
        if index is None:
            self._device = "/CPU:0"
        else:
            gpus = tf.config.list_physical_devices("GPU")
            if index >= len(gpus):
                raise ModelLoadError(f"device {self.manifest.device!r} asked for, but TensorFlow sees {len(gpus)} "
                                     "GPU(s); set device = \"cpu\" or serve it on a GPU machine")
            self._device = f"/GPU:{index}"
        try:
            with tf.device(self._device):
                self.saved = tf.saved_model.load(str(directory))
        except Exception as exc:  # noqa: BLE001 - TensorFlow raises many kinds for a broken SavedModel
            raise ModelLoadError(f"TensorFlow could not load {directory.name}: {type(exc).__name__}: {exc}") from exc
        name = str(self.manifest.parameters.get("signature", "serving_default"))
        signatures = dict(self.saved.signatures)
        if name not in signatures:
            have = ", ".join(signatures) or "none"
            raise ModelLoadError(f"the SavedModel has no signature {name!r} (it has: {have})")
        self.function = signatures[name]
        self._tf = tf
        _, kwargs = self.function.structured_input_signature
        outputs = self.function.structured_outputs
        if not isinstance(outputs, Mapping):
            raise ModelLoadError(f"signature {name!r} does not return a dict of named tensors")
        if not self.inputs:
            self.inputs = tuple(_spec(key, spec) for key, spec in kwargs.items())
        if not self.outputs:
            self.outputs = tuple(_spec(key, spec) for key, spec in sorted(outputs.items()))
        missing = [spec.name for spec in self.inputs if spec.name not in kwargs]
        if missing:
            raise ModelLoadError(f"manifest inputs {missing} are not inputs of signature {name!r} "
                                 f"({', '.join(kwargs)})")
        self._dtypes = {key: spec.dtype for key, spec in kwargs.items()}
        self._output_names = [spec.name for spec in self.outputs]

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        """Inputs by name -> the signature's outputs by name (``[batch, ...]`` each; strings as bytes)."""
        tf = self._tf
        with tf.device(self._device):
            feeds = {name: tf.constant(array, dtype=self._dtypes[name]) for name, array in batch.items()}
            result = self.function(**feeds)
        return {name: np.asarray(result[name].numpy()) for name in self._output_names if name in result}

    def unload(self) -> None:
        self.__dict__.pop("function", None)
        self.__dict__.pop("saved", None)
