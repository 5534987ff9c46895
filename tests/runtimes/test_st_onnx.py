"""The sentence-transformers runtime's ONNX Runtime backend: same embeddings and token counts, cached export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlgate.errors import ModelLoadError
from mlgate.model.manifest import ModelManifest
from mlgate.runtimes import runtime_class
from tests.runtimes.test_sentence_transformers import SENTENCES, _runtime


@pytest.fixture
def onnx_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.getbasetemp() / "xdg-cache"  # one export per test session
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.mark.parametrize("normalize", [True, False])
def test_onnxruntime_equals_sentence_transformers(embeddings_repo: Path, tmp_path: Path, onnx_cache: Path,
                                                  sentence_transformer: Any, normalize: bool) -> None:
    runtime = _runtime(embeddings_repo, tmp_path,
                       parameters={"backend": "onnxruntime", "normalize": normalize, "batch_size": 2})
    runtime.load()
    assert runtime._onnx.path.is_file() and runtime._onnx.path.is_relative_to(onnx_cache)
    texts = np.array([s.encode() for s in SENTENCES], dtype=object)
    out = runtime.predict({"text": texts}, {})
    got = out["embedding"]
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), 384)
    want = sentence_transformer.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=True)
    unit = got / np.linalg.norm(got, axis=1, keepdims=True)
    assert (np.sum(unit * want, axis=1) >= 0.99999).all()
    norms = np.linalg.norm(got, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5) if normalize else (norms > 1.5).all()
    counts = [len(sentence_transformer.tokenizer(s, truncation=True, max_length=256)["input_ids"])
              for s in SENTENCES]
    assert out["token_count"].tolist() == counts


def test_onnxruntime_export_is_cached(embeddings_repo: Path, tmp_path: Path, onnx_cache: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _runtime(embeddings_repo, tmp_path / "a", parameters={"backend": "onnxruntime"})
    first.load()
    stamp = first._onnx.path.stat().st_mtime_ns
    second = _runtime(embeddings_repo, tmp_path / "b", parameters={"backend": "onnxruntime"})
    second.load()
    assert second._onnx.path == first._onnx.path and second._onnx.path.stat().st_mtime_ns == stamp


def test_unknown_backend_fails_to_load(embeddings_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="backend must be"):
        _runtime(embeddings_repo, tmp_path, parameters={"backend": "tensorrt"}).load()


def test_the_serving_process_never_loads_pytorch(embeddings_repo: Path, onnx_cache: Path) -> None:
    # The minilm example (backend onnxruntime), loaded and used in a fresh interpreter: the export runs in a
    # child process, so neither torch nor sentence-transformers is imported here (~300 MB per HTTP process).
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from pathlib import Path\n"
        "from mlgate.model.manifest import read_manifest\n"
        "from mlgate.runtimes.sentence_transformers import SentenceTransformersRuntime\n"
        f"root = Path({str(embeddings_repo / 'minilm')!r})\n"
        "runtime = SentenceTransformersRuntime(read_manifest(root), root)\n"
        "runtime.load()\n"
        "out = runtime.predict({'text': np.array([b'hello world'], dtype=object)}, {})\n"
        "print(out['embedding'].shape, int(out['token_count'][0]), 'torch' in sys.modules,\n"
        "      'sentence_transformers' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "XDG_CACHE_HOME": str(onnx_cache)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["(1,", "384)", "4", "False", "False"], done.stdout


def test_a_pipeline_other_than_mean_pooling_is_refused(embeddings_repo: Path, tmp_path: Path) -> None:
    model = tmp_path / "cls-model"
    shutil.copytree(embeddings_repo / "minilm" / "model", model)
    config = model / "1_Pooling" / "config.json"
    pooling = json.loads(config.read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    config.write_text(json.dumps(pooling))
    spec = ModelManifest.model_validate({"name": "m", "runtime": "sentence-transformers", "artifact": "cls-model",
                                         "parameters": {"backend": "onnxruntime"}})
    with pytest.raises(ModelLoadError, match="mean pooling only"):
        runtime_class("sentence-transformers")(spec, tmp_path).load()


def test_length_groups_split_a_batch_where_padding_costs_more_than_a_call() -> None:
    from mlgate.runtimes.st_onnx import length_groups

    lengths = np.array([18, 18, 9, 9, 9, 9])
    # two long rows and four short: padding the short ones to 18 wastes 36 token-rows
    assert length_groups(lengths, 64, run_cost=12) == [(0, 2), (2, 6)]
    assert length_groups(lengths, 64, run_cost=40) == [(0, 6)]  # a second call would cost more than it saves
    runs = length_groups(np.full(7, 10), 3, run_cost=0)
    assert max(stop - start for start, stop in runs) <= 3  # never more rows than the batch size
    assert runs[0][0] == 0 and runs[-1][1] == 7 and all(a[1] == b[0] for a, b in zip(runs, runs[1:], strict=False))
    assert length_groups(np.array([], dtype=np.int64), 64, run_cost=12) == []
