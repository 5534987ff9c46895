"""PyTorch models: ``torch.export`` programs (``.pt2``, ``torch.export.save``) and TorchScript (``.pt``).

The module's ``forward`` is called with the inputs as tensors, in the order of the manifest's (or the
program's) inputs, under ``torch.inference_mode()``; its result (a tensor, a tuple or list of tensors, or a
dict of them by output name) becomes the outputs, in order.

Signature: for a ``.pt2`` program the manifest may leave it out: the inputs are the ``forward`` arguments
(their names, dtypes and shapes as exported, dimensions marked dynamic with ``torch.export.Dim`` becoming
``-1``) and the outputs are ``output-0``, ``output-1``... with their exported dtypes and shapes. Export with
a dynamic batch dimension (``dynamic_shapes={"x": {0: torch.export.Dim("batch")}}``), else the program takes
exactly the batch size it was traced with. TorchScript records no dtypes or shapes: declare ``[[inputs]]`` and
``[[outputs]]``.

Manifest: ``device`` (``cpu``, ``cuda``, ``cuda:N``; a CUDA device that is not there leaves the model not
ready). ``parameters.threads``: PyTorch's intra-op threads (``torch.set_num_threads``), which is per process,
so it is a thread count per instance when the model runs in worker processes (``instances >= 1``).
Security: TorchScript and ``.pt2`` files hold a program in PyTorch's own restricted formats, not pickled
Python; a plain ``torch.save`` pickle of an ``nn.Module`` is not served (it runs code when loaded).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlgate.errors import ModelLoadError
from mlgate.model.manifest import TensorSpec
from mlgate.runtimes.base import Batch, Runtime
from mlgate.runtimes.support import positive_int, require, spec_of, torch_device

__all__ = ["TorchRuntime"]


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


class TorchRuntime(Runtime):
    """``runtime = "torch"``: a ``torch.export`` program (``.pt2``, signature read from it) or TorchScript
    (``.pt``, signature from the manifest), run under ``torch.inference_mode()``.
    """
    name = "torch"
    platform = "pytorch_libtorch"
    cuda = True

    def load(self) -> None:
        torch = require("torch", "torch")
        path = self.artifact_path
        threads = positive_int(self.manifest.parameters, "threads")
        if threads is not None:
            torch.set_num_threads(threads)
        self._device = torch_device(self.manifest.device)
        self._torch = torch
        if path.suffix == ".pt2":
            try:
                program = torch.export.load(str(path))
            except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a file that is not a program
                raise ModelLoadError(f"torch.export.load could not read {path.name}: {type(exc).__name__}: "
                                     f"{exc}") from exc
            inputs, outputs = _program_signature(program)
            self.module = program.module().to(self._device)
        elif path.suffix in (".pt", ".pth", ".torchscript"):
            try:
                self.module = torch.jit.load(str(path), map_location=self._device)
            except Exception as exc:  # noqa: BLE001 - RuntimeError for anything that is not TorchScript
                raise ModelLoadError(f"torch.jit.load could not read {path.name} as TorchScript "
                                     f"(torch.jit.save): {type(exc).__name__}: {exc}") from exc
            self.module.eval()
            inputs, outputs = (), ()
            if not self.inputs or not self.outputs:
                raise ModelLoadError(f"{path.name} is TorchScript, which records no dtypes or shapes: declare "
                                     "[[inputs]] and [[outputs]] in model.toml (or serve a torch.export .pt2)")
        else:
            raise ModelLoadError(f"{path.name}: the torch runtime serves torch.export programs (.pt2) and "
                                 "TorchScript (.pt)")
        if not self.inputs:
            self.inputs = inputs
        if not self.outputs:
            self.outputs = outputs
        if inputs and len(self.inputs) != len(inputs):
            raise ModelLoadError(f"the manifest declares {len(self.inputs)} inputs, the program takes {len(inputs)}")
        self._input_names = [spec.name for spec in self.inputs]
        self._output_names = [spec.name for spec in self.outputs]

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        """Inputs in signature order -> ``forward`` -> outputs by name (``[batch, ...]`` each)."""
        torch = self._torch
        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(batch[name])).to(self._device) for name in self._input_names]
            result = self.module(*args)
        if isinstance(result, Mapping):
            return {name: _numpy(result[name]) for name in self._output_names if name in result}
        if isinstance(result, list | tuple):
            if len(result) != len(self._output_names):
                raise ValueError(f"forward returned {len(result)} tensors, the signature has "
                                 f"{len(self._output_names)} outputs")
            return {name: _numpy(value) for name, value in zip(self._output_names, result, strict=True)}
        return {self._output_names[0]: _numpy(result)}

    def unload(self) -> None:
        self.__dict__.pop("module", None)


def _numpy(value: Any) -> np.ndarray:
    return np.asarray(value.detach().cpu().numpy()) if hasattr(value, "detach") else np.asarray(value)


def _program_signature(program: Any) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """(inputs, outputs) of an ExportedProgram, from its graph's placeholder and output nodes."""
    signature = program.graph_signature
    user_inputs = list(signature.user_inputs)
    placeholders = {node.name: node for node in program.graph.nodes if node.op == "placeholder"}
    inputs = []
    for name in user_inputs:
        value = placeholders[name].meta.get("val")
        if value is None or not hasattr(value, "shape"):
            raise ModelLoadError(f"program input {name!r} is not a tensor; declare [[inputs]] in model.toml")
        inputs.append(spec_of(name, _dtype_name(value.dtype), list(value.shape)))
    output_node = next(node for node in program.graph.nodes if node.op == "output")
    values = [arg.meta.get("val") if hasattr(arg, "meta") else None for arg in output_node.args[0]]
    values = values[len(values) - len(signature.user_outputs):]  # buffers mutated in place come first
    outputs = []
    for i, value in enumerate(values):
        if value is None or not hasattr(value, "shape"):
            raise ModelLoadError(f"program output {i} is not a tensor; declare [[outputs]] in model.toml")
        outputs.append(spec_of(f"output-{i}", _dtype_name(value.dtype), list(value.shape)))
    return tuple(inputs), tuple(outputs)
