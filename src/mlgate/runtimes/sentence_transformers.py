"""Sentence embeddings with the ``sentence-transformers`` library, on PyTorch (CPU).

The artifact is a sentence-transformers model *directory* (``modules.json``, ``config.json``, the weights,
the tokenizer), as ``SentenceTransformer.save()`` writes it. It is read from disk only: the Hugging Face Hub
is switched off (``HF_HUB_OFFLINE=1``, ``local_files_only``), so nothing is ever downloaded.

Signature (filled in when the manifest leaves it out):

- input ``text`` BYTES ``[-1]``: one UTF-8 sentence per row;
- output ``embedding`` FP32 ``[-1, D]`` (D = the model's embedding width, 384 for all-MiniLM-L6-v2);
- output ``token_count`` INT64 ``[-1]``: tokens the model read for each row, counted by the model's own
  tokenizer with its special tokens, after truncation to ``max_seq_length`` (longer text is truncated, as
  sentence-transformers does).

Manifest ``parameters``:

- ``normalize`` (bool): true scales every embedding to unit L2 norm; false removes a trailing ``Normalize``
  module from the model's pipeline; absent keeps the pipeline as saved (all-MiniLM-L6-v2 normalises).
- ``batch_size`` (int, default 32): sentences per forward pass inside one call.
- ``max_seq_length`` (int): override the model's truncation length, in tokens.
- ``backend`` (``"torch"``, default, or ``"onnxruntime"``): onnxruntime exports the transformer to ONNX once
  at load (cached; in a child process) and runs it with ONNX Runtime and the model's fast tokenizer, pooling and
  normalising in numpy (``mlgate.runtimes.st_onnx``), without PyTorch in the serving process: ~1.3x the
  sentences per second on CPU and less memory (benchmarks/RESULTS.md), the same embeddings to float32
  rounding. Needs ``modules.json`` of the pipeline Transformer -> Pooling(mean) [-> Normalize] and a
  ``tokenizer.json``. The ``minilm`` example uses it.

Needs the ``embeddings`` extra; install torch's CPU build first (see the README).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlgate.errors import InvalidInput, ModelLoadError
from mlgate.model.manifest import TensorSpec
from mlgate.runtimes.base import Batch, Runtime
from mlgate.runtimes.st_onnx import OnnxEncoder

__all__ = ["INSTALL_HINT", "SentenceTransformersRuntime"]

INSTALL_HINT = (
    "pip install torch==2.13.0 && pip install -c constraints.txt 'mlgate[embeddings]' "
    "(torch first, from its CPU build; `make install` does this)"
)
"""How to install what this runtime needs."""


class SentenceTransformersRuntime(Runtime):
    """``runtime = "sentence_transformers"``: a sentence-embedding model directory, on PyTorch or ONNX Runtime
    (``[parameters] backend``): texts in (BYTES ``[-1]``), FP32 ``[-1, D]`` embeddings and token counts out.
    """
    name = "sentence-transformers"
    platform = "sentence_transformers"

    def load(self) -> None:
        directory = self.model_dir / self.manifest.artifact
        if not directory.is_dir() or not ((directory / "modules.json").is_file()
                                          or (directory / "config.json").is_file()):
            raise ModelLoadError(
                f"artifact {self.manifest.artifact!r} in {self.model_dir} is not a sentence-transformers model "
                "directory (one holding modules.json or config.json)")
        params = self.manifest.parameters
        normalize = params.get("normalize")
        if normalize is not None and not isinstance(normalize, bool):
            raise ModelLoadError(f"parameters.normalize must be true or false, got {normalize!r}")
        self._normalize = bool(normalize)
        self._batch_size = _positive_int(params, "batch_size", 32)
        max_seq_length = params.get("max_seq_length")
        backend = params.get("backend", "torch")
        if backend not in ("torch", "onnxruntime"):
            raise ModelLoadError(f"parameters.backend must be \"torch\" or \"onnxruntime\", got {backend!r}")
        self._lock = threading.Lock()
        self._onnx: OnnxEncoder | None = None
        if backend == "onnxruntime":  # no PyTorch in this process (see mlgate.runtimes.st_onnx)
            self._onnx = OnnxEncoder(directory, normalize=normalize, batch_size=self._batch_size,
                                     max_seq_length=None if max_seq_length is None else
                                     _positive_int(params, "max_seq_length", 0))
            self.model: Any = None
            self.dimensions = self._onnx.dimensions
            self._check_signature(self.dimensions)
            return

        # Read from disk only: these must be set before huggingface_hub is first imported.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
            from sentence_transformers.models import Normalize
            from transformers.utils import logging as transformers_logging
        except ImportError as exc:
            raise ModelLoadError(f"the sentence-transformers runtime is not installed ({exc}): {INSTALL_HINT}") from exc
        transformers_logging.disable_progress_bar()  # no per-load progress bars in the server log

        try:
            model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:  # torch and transformers raise these for bad files
            raise ModelLoadError(f"sentence-transformers could not load {directory}: {exc}") from exc
        if normalize is False and len(model) and isinstance(model[-1], Normalize):
            del model[-1]
        if max_seq_length is not None:
            model.max_seq_length = _positive_int(params, "max_seq_length", 0)
        model.eval()
        self.model = model
        width = model.get_embedding_dimension()
        if not isinstance(width, int):
            raise ModelLoadError(f"{directory}: the model does not report its embedding width")
        self.dimensions = width
        self._check_signature(width)

    def _check_signature(self, width: int) -> None:
        if not self.inputs:
            self.inputs = (TensorSpec(name="text", datatype="BYTES", shape=(-1,)),)
        if not self.outputs:
            self.outputs = (TensorSpec(name="embedding", datatype="FP32", shape=(-1, width)),
                            TensorSpec(name="token_count", datatype="INT64", shape=(-1,)))
        if len(self.inputs) != 1 or self.inputs[0].datatype != "BYTES" or len(self.inputs[0].shape) != 1:
            raise ModelLoadError("a sentence-transformers model takes one input: BYTES [-1] (a sentence per row)")
        self._input = self.inputs[0].name
        allowed = {"embedding": ("FP32", (-1, width)), "token_count": ("INT64", (-1,))}
        for spec in self.outputs:
            want = allowed.get(spec.name)
            shape_ok = want is not None and len(spec.shape) == len(want[1]) and all(
                s in (-1, w) for s, w in zip(spec.shape, want[1], strict=True))
            if want is None or spec.datatype != want[0] or not shape_ok:
                raise ModelLoadError(
                    f"output {spec.name!r} {spec.datatype} {list(spec.shape)}: a sentence-transformers model gives "
                    f"'embedding' FP32 [-1, {width}] and 'token_count' INT64 [-1]")
        self._outputs = {spec.name for spec in self.outputs}

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        """``text`` BYTES ``[n]`` -> ``embedding`` FP32 ``[n, D]`` and ``token_count`` INT64 ``[n]``.

        Raises InvalidInput (400) for a row that is not valid UTF-8. One call runs at a time per model
        instance: PyTorch already spreads one call over the cores, and concurrent requests are merged by the
        dynamic batcher instead.
        """
        texts = [_text(value, row) for row, value in enumerate(batch[self._input].reshape(-1).tolist())]
        out: dict[str, np.ndarray] = {}
        with self._lock:
            if self._onnx is not None:
                vectors, counts = self._onnx.encode(texts)
                return {name: array for name, array in (("embedding", vectors), ("token_count", counts))
                        if name in self._outputs}
            if "embedding" in self._outputs:
                vectors = self.model.encode(
                    texts, batch_size=self._batch_size, convert_to_numpy=True, show_progress_bar=False,
                    normalize_embeddings=self._normalize)
                out["embedding"] = np.asarray(vectors, dtype=np.float32)
            if "token_count" in self._outputs:
                encoded = self.model.tokenizer(texts, truncation=True, max_length=self.model.max_seq_length,
                                               return_length=True)
                out["token_count"] = np.asarray(encoded["length"], dtype=np.int64)
        return out

    def unload(self) -> None:
        self.__dict__.pop("model", None)


def _positive_int(params: Mapping[str, Any], key: str, default: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelLoadError(f"parameters.{key} must be a positive integer, got {value!r}")
    return value


def _text(value: object, row: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"row {row} of the text input is not valid UTF-8 ({exc.reason} at byte "
                               f"{exc.start})", field="inputs") from None
    raise InvalidInput(f"row {row} of the text input is not a string", field="inputs")

