"""ONNX models on onnxruntime (CPU execution provider).

Inputs and outputs left out of the manifest are read from the graph: ``tensor(float)`` is FP32, symbolic or
unknown dimensions are ``-1``. Only tensor outputs are served; a classifier exported by skl2onnx needs
``options={"zipmap": False}`` so its probabilities are a tensor, not a sequence of maps.
Manifest ``parameters``: ``intra_op_num_threads`` (default: onnxruntime's choice).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlgate.errors import InvalidInput, ModelLoadError
from mlgate.model.manifest import TensorSpec
from mlgate.runtimes.base import Batch, Runtime

__all__ = ["OnnxRuntime"]

# onnxruntime's NodeArg.type strings -> V2 datatypes (onnxruntime docs, "Data types").
_ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def _spec(arg: Any) -> TensorSpec:
    datatype = _ORT_TYPES.get(arg.type)
    if datatype is None:
        raise ModelLoadError(
            f"graph tensor {arg.name!r} has type {arg.type}, which mlgate cannot serve "
            "(for skl2onnx classifiers, export with options={'zipmap': False})"
        )
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or [-1]))
    return TensorSpec(name=arg.name, datatype=datatype, shape=shape)  # type: ignore[arg-type]


class OnnxRuntime(Runtime):
    """``runtime = "onnx"``: an ONNX model on ONNX Runtime (CPU), inputs and outputs read from the session."""
    name = "onnx"
    platform = "onnxruntime_onnx"

    def load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        threads = self.manifest.parameters.get("intra_op_num_threads")
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(
                str(self.artifact_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except (RuntimeError, ValueError) as exc:  # onnxruntime raises its own RuntimeError subclasses
            raise ModelLoadError(f"onnxruntime could not load {self.manifest.artifact!r}: {exc}") from exc
        graph_inputs = {arg.name: arg for arg in self.session.get_inputs()}
        graph_outputs = {arg.name: arg for arg in self.session.get_outputs()}
        if not self.inputs:
            self.inputs = tuple(_spec(arg) for arg in graph_inputs.values())
        if not self.outputs:
            self.outputs = tuple(_spec(arg) for arg in graph_outputs.values())
        for kind, specs, graph in (("input", self.inputs, graph_inputs), ("output", self.outputs, graph_outputs)):
            for spec in specs:
                if spec.name not in graph:
                    raise ModelLoadError(f"manifest {kind} {spec.name!r} is not in the graph ({', '.join(graph)})")
        self._output_names = [spec.name for spec in self.outputs]

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        feeds = {name: _as_ort(name, array) for name, array in batch.items()}
        results = self.session.run(self._output_names, feeds)
        return dict(zip(self._output_names, (np.asarray(r) for r in results), strict=True))

    def unload(self) -> None:
        self.__dict__.pop("session", None)


def _as_ort(name: str, array: np.ndarray) -> np.ndarray:
    # onnxruntime takes string tensors as str objects, not bytes.
    if array.dtype == object:
        try:
            decoded: np.ndarray = np.vectorize(_text, otypes=[object])(array)
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"input '{name}': a value is not UTF-8 text ({exc.reason} at byte {exc.start})",
                               field="inputs") from None
        return decoded
    return array


def _text(value: object) -> object:
    return value.decode("utf-8") if isinstance(value, bytes) else value
