"""ONNX Runtime backend of the sentence-transformers runtime (manifest ``parameters.backend = "onnxruntime"``).

At load the model's transformer is exported once with ``torch.onnx.export`` (TorchScript exporter, dynamic
batch and sequence axes) and cached under ``$XDG_CACHE_HOME/mlgate/onnx/<key>/model.onnx`` (else
``~/.cache/...``); the key hashes the artifact's file names, sizes and mtimes and the torch version, so a
changed model is exported again. Sentences are then tokenized once (the model's own tokenizer, truncation to
``max_seq_length``), run through an ``onnxruntime.InferenceSession`` with the process's torch thread count,
mean-pooled over the attention mask and L2-normalised in numpy: the same arithmetic as the pipeline
``Transformer -> Pooling(mean) -> [Normalize]``, which is the only pipeline this backend accepts (others get
ModelLoadError). Embeddings match sentence-transformers' to float32 rounding (cosine >= 0.99999, tested).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mlgate.errors import ModelLoadError

__all__ = ["OnnxEncoder", "onnx_cache_dir"]


def onnx_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mlgate/onnx``, else ``~/.cache/mlgate/onnx``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mlgate" / "onnx"


def _cache_key(directory: Path, torch_version: str) -> str:
    digest = hashlib.sha256(torch_version.encode())
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(directory)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


class OnnxEncoder:
    """Encode sentences with ONNX Runtime; ``model`` is a loaded ``SentenceTransformer``."""

    def __init__(self, model: Any, directory: Path, normalize: bool, batch_size: int) -> None:
        import onnxruntime as ort
        import torch
        from sentence_transformers.models import Normalize, Pooling, Transformer

        modules = list(model)
        if (len(modules) not in (2, 3) or not isinstance(modules[0], Transformer)
                or not isinstance(modules[1], Pooling) or _pooling_mode(modules[1]) != "mean"
                or (len(modules) == 3 and not isinstance(modules[2], Normalize))):
            raise ModelLoadError("backend onnxruntime needs the pipeline Transformer -> Pooling(mean) "
                                 "[-> Normalize]; use backend = \"torch\" for this model")
        self.normalize = normalize or len(modules) == 3
        self.batch_size = batch_size
        self.tokenizer = model.tokenizer
        self.max_seq_length = int(model.max_seq_length)
        path = onnx_cache_dir() / _cache_key(directory, torch.__version__) / "model.onnx"
        if not path.is_file():
            _export(modules[0].auto_model, self.tokenizer, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.path = path

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``texts`` (n) -> embeddings FP32 ``[n, D]`` and token counts INT64 ``[n]``.

        Sentences go through the session ``batch_size`` at a time, sorted by length so padding stays small.
        """
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors: list[np.ndarray] = [np.empty(0, np.float32)] * len(texts)
        counts = np.zeros(len(texts), dtype=np.int64)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            encoded = self.tokenizer([texts[i] for i in chunk], padding=True, truncation=True,
                                     max_length=self.max_seq_length, return_tensors="np")
            feed = {name: np.asarray(encoded[name], dtype=np.int64) for name in self.input_names}
            hidden = self.session.run(None, feed)[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            if self.normalize:
                pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            for row, index in enumerate(chunk):
                vectors[index] = pooled[row]
                counts[index] = int(feed["attention_mask"][row].sum())
        return np.stack(vectors).astype(np.float32, copy=False), counts


def _export(transformer: Any, tokenizer: Any, path: Path) -> None:
    """Export ``transformer`` (a Hugging Face model) to ``path``, atomically (write a temp file, rename)."""
    import torch

    class _Hidden(torch.nn.Module):  # type: ignore[misc]  # torch is untyped here
        def __init__(self, inner: Any, names: list[str]) -> None:
            super().__init__()
            self.inner = inner
            self.names = names

        def forward(self, *tensors: Any) -> Any:
            return self.inner(**dict(zip(self.names, tensors, strict=True))).last_hidden_state

    sample = tokenizer(["an example sentence", "another one, a little longer"], padding=True,
                       return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        # The TorchScript exporter (dynamo=False) needs no onnxscript; torch warns that it is the legacy one.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Hidden(transformer, names).eval(), tuple(sample[n] for n in names), tmp,
                              input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                              opset_version=17, dynamo=False)
        os.replace(tmp, path)
    except Exception as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ModelLoadError(f"exporting the model to ONNX failed: {exc}") from exc


def _pooling_mode(pooling: Any) -> str:
    """``"mean"`` etc.: the ``pooling_mode`` of the config (sentence-transformers >= 5), or the old getter."""
    config = pooling.get_config_dict() if hasattr(pooling, "get_config_dict") else {}
    mode = config.get("pooling_mode")
    if mode is None and hasattr(pooling, "get_pooling_mode_str"):
        mode = pooling.get_pooling_mode_str()
    return str(mode)
