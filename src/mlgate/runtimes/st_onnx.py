"""ONNX Runtime backend of the sentence-transformers runtime (manifest ``parameters.backend = "onnxruntime"``).

The serving process never imports PyTorch. It reads the model directory as sentence-transformers saved it:
``modules.json`` must name the pipeline ``Transformer -> Pooling(mean) [-> Normalize]`` (others get
ModelLoadError), the Transformer's folder its ``sentence_bert_config.json`` (``max_seq_length``,
``do_lower_case``) and its fast tokenizer (``tokenizer.json``, run with the ``tokenizers`` library: the very
tokenizer ``transformers`` wraps), the Pooling folder its ``config.json``. The transformer itself is exported
once to ONNX by a child process (``python -m mlgate.runtimes.st_onnx DIR OUT``: sentence-transformers and
``torch.onnx.export``, TorchScript exporter, dynamic batch and sequence axes) and cached under
``$XDG_CACHE_HOME/mlgate/onnx/<key>/model.onnx`` (else ``~/.cache/...``); the key hashes the artifact's file
names, sizes and mtimes and the installed torch version, so a changed model is exported again.

Sentences are tokenized once (truncated to ``max_seq_length``), cut into runs of similar length, each padded to
its own longest (``length_groups``), run through an ``onnxruntime.InferenceSession`` with ``OMP_NUM_THREADS``
threads (else one per core), mean-pooled over the attention mask and L2-normalised in numpy: the arithmetic of
sentence-transformers' pipeline. Embeddings match sentence-transformers' to float32 rounding (cosine >= 0.99999)
and token counts exactly (tested).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mlgate.errors import ModelLoadError

__all__ = ["OnnxEncoder", "onnx_cache_dir"]

_TRANSFORMER, _POOLING, _NORMALIZE = ("sentence_transformers.models." + n for n in ("Transformer", "Pooling",
                                                                                    "Normalize"))
_EXPORT_TIMEOUT_S = 600


def onnx_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mlgate/onnx``, else ``~/.cache/mlgate/onnx``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mlgate" / "onnx"


def _torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "no torch"


def _cache_key(directory: Path) -> str:
    digest = hashlib.sha256(_torch_version().encode())
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(directory)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"backend onnxruntime: cannot read {path}: {exc}") from exc


def _threads() -> int:
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class OnnxEncoder:
    """Encode sentences with ONNX Runtime, from a sentence-transformers model ``directory``.

    ``normalize``: True or False forces unit-length embeddings on or off; None keeps the pipeline's own
    (normalised when it ends in Normalize). ``max_seq_length`` overrides the model's truncation length (tokens).
    Raises ModelLoadError for a directory of another shape or a failed export.
    """

    def __init__(self, directory: Path, *, normalize: bool | None, batch_size: int,
                 max_seq_length: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        modules = _read_json(directory / "modules.json") if (directory / "modules.json").is_file() else None
        types = [m.get("type") for m in modules] if isinstance(modules, list) else []
        if types not in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]):
            raise ModelLoadError("backend onnxruntime needs a sentence-transformers directory whose modules.json "
                                 "is Transformer -> Pooling(mean) [-> Normalize]; use backend = \"torch\" for this "
                                 "model")
        assert isinstance(modules, list)
        transformer_dir = directory / str(modules[0].get("path", ""))
        pooling = _read_json(directory / str(modules[1].get("path", "")) / "config.json")
        if _pooling_mode(pooling) != "mean":
            raise ModelLoadError("backend onnxruntime supports mean pooling only; use backend = \"torch\" for this "
                                 "model")
        config_path = transformer_dir / "sentence_bert_config.json"
        config = _read_json(config_path) if config_path.is_file() else {}
        if not (transformer_dir / "tokenizer.json").is_file():
            raise ModelLoadError("backend onnxruntime needs the model's fast tokenizer (tokenizer.json); use "
                                 "backend = \"torch\" for this model")
        self.normalize = normalize if normalize is not None else len(types) == 3
        self.batch_size = batch_size
        self.lower_case = bool(config.get("do_lower_case", False))
        self.max_seq_length = int(max_seq_length or config.get("max_seq_length") or 512)
        self.tokenizer = Tokenizer.from_file(str(transformer_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_seq_length)
        self.tokenizer.no_padding()
        self.pad_id = _pad_id(self.tokenizer, transformer_dir)
        self.path = onnx_cache_dir() / _cache_key(directory) / "model.onnx"
        if not self.path.is_file():
            _export_in_child(directory, self.path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        width = pooling.get("word_embedding_dimension") or self.session.get_outputs()[0].shape[-1]
        if not isinstance(width, int):
            raise ModelLoadError(f"{directory}: the model does not say its embedding width")
        self.dimensions = width

    RUN_COST_TOKENS = 12.0
    """The fixed cost of one session call, in token-rows of work: what splitting a batch must save to pay off.
    Measured on all-MiniLM-L6-v2, one ONNX Runtime thread, batches of 16 of the benchmark's sentences (8-18
    tokens): 0 -> +7 %, 8-16 -> +10 %, 32 -> +0 %, 64 -> no split (sentences/s against one padded batch;
    benchmarks/RESULTS.md)."""

    def count_tokens(self, texts: list[str]) -> np.ndarray:
        """Tokens of each text (special tokens included, after truncation): INT64 ``[n]``."""
        encodings = self.tokenizer.encode_batch(self._prepared(texts))
        return np.array([len(e.ids) for e in encodings], dtype=np.int64)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``texts`` (n) -> embeddings FP32 ``[n, D]`` and token counts INT64 ``[n]``.

        Sentences are tokenized once without padding, sorted by token count and cut into runs of similar
        length (``length_groups``, at most ``batch_size`` each), each padded to its own longest: a batch of
        mixed lengths does not pay for its longest sentence on every row.
        """
        encodings = self.tokenizer.encode_batch(self._prepared(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start, stop in length_groups(lengths[order], self.batch_size, self.RUN_COST_TOKENS):
            chunk = order[start:stop]
            width = int(lengths[chunk[0]])
            columns = {name: np.full((len(chunk), width), fill, dtype=np.int64)
                       for name, fill in (("input_ids", self.pad_id), ("attention_mask", 0), ("token_type_ids", 0))}
            for row, i in enumerate(chunk):
                e = encodings[i]
                n = len(e.ids)
                columns["input_ids"][row, :n] = e.ids
                columns["attention_mask"][row, :n] = 1
                columns["token_type_ids"][row, :n] = e.type_ids
            hidden = self.session.run(None, {name: columns[name] for name in self.input_names})[0]
            mask = columns["attention_mask"].astype(np.float32)[..., None]
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            if self.normalize:
                pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            vectors[chunk] = pooled
        return vectors, lengths

    def _prepared(self, texts: list[str]) -> list[str]:
        return [t.lower() for t in texts] if self.lower_case else texts


def length_groups(lengths: np.ndarray, most: int, run_cost: float) -> list[tuple[int, int]]:
    """Cut ``lengths`` (token counts, longest first) into runs ``[(start, stop), ...]`` of at most ``most``
    rows that minimise the padded work: each run costs ``run_cost`` (a session call's fixed cost, in
    token-rows) plus its rows times its longest. Exact (dynamic programming over the cut points), O(n * most).
    """
    n = len(lengths)
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for stop in range(1, n + 1):
        for start in range(max(0, stop - most), stop):
            cost = best[start] + run_cost + (stop - start) * float(lengths[start])
            if cost < best[stop]:
                best[stop], cut[stop] = cost, start
    runs = []
    stop = n
    while stop > 0:
        runs.append((cut[stop], stop))
        stop = cut[stop]
    return runs[::-1]


def _pad_id(tokenizer: Any, transformer_dir: Path) -> int:
    config_path = transformer_dir / "tokenizer_config.json"
    config = _read_json(config_path) if config_path.is_file() else {}
    pad = config.get("pad_token", "[PAD]")
    if isinstance(pad, dict):
        pad = pad.get("content")
    pad_id = tokenizer.token_to_id(str(pad)) if pad is not None else None
    return int(pad_id) if pad_id is not None else 0


def _pooling_mode(config: dict[str, Any]) -> str:
    """``"mean"`` etc.: ``pooling_mode`` (sentence-transformers >= 5) or the older ``pooling_mode_*_tokens`` flags."""
    mode = config.get("pooling_mode")
    if isinstance(mode, str):
        return mode
    flags = [name for name in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens")
             if config.get(f"pooling_mode_{name}")]
    return "mean" if flags == ["mean_tokens"] else "+".join(flags) or "none"


def _export_in_child(directory: Path, path: Path) -> None:
    """Export in a child process, so that this one never loads PyTorch (~300 MB) for the ONNX backend."""
    try:
        done = subprocess.run([sys.executable, "-m", "mlgate.runtimes.st_onnx", str(directory), str(path)],
                              capture_output=True, text=True, timeout=_EXPORT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ModelLoadError(f"exporting the model to ONNX took over {_EXPORT_TIMEOUT_S} s") from exc
    if done.returncode != 0 or not path.is_file():
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelLoadError(f"exporting the model to ONNX failed (needs torch and sentence-transformers, the "
                             f"embeddings extra): {detail}")


def export(directory: Path, path: Path) -> None:
    """Export the Transformer of the sentence-transformers model in ``directory`` to ``path``, atomically."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
    transformer, tokenizer = model[0].auto_model, model.tokenizer

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
    finally:
        Path(tmp).unlink(missing_ok=True)


if __name__ == "__main__":  # the export child: python -m mlgate.runtimes.st_onnx DIR OUT
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    export(Path(sys.argv[1]), Path(sys.argv[2]))
