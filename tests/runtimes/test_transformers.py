"""The transformers runtime: tiny random-weight models built here from a config (BERT for text, ViT for images)
and saved with save_pretrained; the served answers equal the same pipelines in this process (through
tritonclient and V1). Nothing is downloaded: the tokenizer's vocabulary is written by the test."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.processes import serve_process
from tests.runtimes.serving import assert_bad_inputs_refused, load_failures, triton_infer, triton_metadata, v1_predict

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "good", "bad", "movie", "film", "was", "is",
         "great", "awful", "i", "liked", "it"]
TEXTS = ["the movie was great", "i liked it", "a bad film", "awful awful awful", "unknown words here"]
LABELS = {0: "negative", 1: "neutral", 2: "positive"}


def _bert_config(**extra: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64, **extra)


def _write(root: Path, name: str, extra: str = "") -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "model.toml").write_text(f'name = "{name}"\nruntime = "transformers"\nartifact = "hf"\n{extra}')
    return directory / "hf"


def _images() -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for size in (16, 24, 40):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import (
        BertForSequenceClassification,
        BertModel,
        BertTokenizerFast,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    root = tmp_path_factory.mktemp("transformers-repo")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(WORDS) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(0)
    label2id = {v: k for k, v in LABELS.items()}
    classifier = _write(root, "sentiment")
    BertForSequenceClassification(_bert_config(num_labels=3, id2label=LABELS, label2id=label2id)).save_pretrained(
        classifier)
    tokenizer.save_pretrained(classifier)
    features = _write(root, "features", '[parameters]\ntask = "feature-extraction"\n')
    BertModel(_bert_config()).save_pretrained(features)
    tokenizer.save_pretrained(features)
    images = _write(root, "animals")
    vit = ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, num_labels=3, id2label={0: "cat", 1: "dog", 2: "cow"},
                    label2id={"cat": 0, "dog": 1, "cow": 2})
    ViTForImageClassification(vit).save_pretrained(images)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(images)
    no_tokenizer = _write(root, "no-tokenizer")  # would need the Hub for its tokenizer: not ready, no download
    BertForSequenceClassification(_bert_config(num_labels=3)).save_pretrained(no_tokenizer)
    return root


@pytest.fixture(scope="module")
def server(repo: Path, server_log: Path) -> Iterator[str]:
    with serve_process(repo, server_log, ready_timeout_s=180) as url:
        yield url


def _pipeline(task: str, directory: Path) -> Any:
    from transformers import pipeline

    return pipeline(task, model=str(directory), device="cpu")


def _scores(answers: list[list[dict[str, Any]]], labels: list[str]) -> np.ndarray:
    return np.array([[next(a["score"] for a in row if a["label"] == label) for label in labels] for row in answers])


def test_text_classification_equals_the_pipeline(server: str, repo: Path) -> None:
    expected = _scores(_pipeline("text-classification", repo / "sentiment" / "hf")(TEXTS, top_k=None),
                       list(LABELS.values()))
    metadata = triton_metadata(server, "sentiment")
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in metadata["outputs"]] == [
        ("label", "BYTES", [-1]), ("score", "FP32", [-1]), ("scores", "FP32", [-1, 3])]
    text = np.array([t.encode() for t in TEXTS], dtype=object)
    got = triton_infer(server, "sentiment", {"text": text}, ["label", "score", "scores"])
    np.testing.assert_allclose(got["scores"], expected, atol=1e-5)
    assert [label.decode() for label in got["label"]] == [list(LABELS.values())[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose(got["score"], expected.max(axis=1), atol=1e-5)
    v1 = v1_predict(server, "sentiment", TEXTS[:2])
    np.testing.assert_allclose([p["scores"] for p in v1], expected[:2], atol=1e-5)
    assert_bad_inputs_refused(server, "sentiment", {"text": text[:2]})


def test_feature_extraction_is_the_mean_of_the_token_states(server: str, repo: Path) -> None:
    pipe = _pipeline("feature-extraction", repo / "features" / "hf")
    answers = [pipe(text) for text in TEXTS]  # one at a time: no padding in the reference
    expected = np.stack([np.asarray(tokens, dtype=np.float32)[0].mean(axis=0) for tokens in answers])
    text = np.array([t.encode() for t in TEXTS], dtype=object)
    got = triton_infer(server, "features", {"text": text}, ["embedding"])["embedding"]
    assert got.shape == (5, 16)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_image_classification_from_encoded_images(server: str, repo: Path) -> None:
    from PIL import Image

    images = _images()
    pipe = _pipeline("image-classification", repo / "animals" / "hf")
    expected = _scores(pipe([Image.open(io.BytesIO(b)).convert("RGB") for b in images], top_k=None),
                       ["cat", "dog", "cow"])
    got = triton_infer(server, "animals", {"image": np.array(images, dtype=object)}, ["label", "scores"])
    np.testing.assert_allclose(got["scores"], expected, atol=1e-5)
    import httpx

    bad = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["not an image"]}]}
    response = httpx.post(f"http://{server}/v2/models/animals/infer", json=bad, timeout=30)
    assert response.status_code == 400 and response.json()["field"] == "inputs", response.text


def test_a_model_that_would_need_the_hub_is_not_ready(server: str, server_log: Path) -> None:
    failed = load_failures(server_log)
    assert set(failed) == {"no-tokenizer"}, failed
    assert "hf holds no tokenizer for text-classification" in failed["no-tokenizer"]


# The MLmodel that mlflow.transformers.save_model (MLflow 3.18) writes for a text-classification pipeline;
# MLflow itself cannot finish saving here (it wants torchvision for its requirements), so the test lays the
# directory out as MLflow does: the model under model/, the tokenizer under components/tokenizer/.
MLMODEL = """flavors:
  python_function:
    loader_module: mlflow.transformers
    python_version: 3.11.7
  transformers:
    code: null
    components:
    - tokenizer
    instance_type: TextClassificationPipeline
    model_binary: model
    pipeline_model_type: BertForSequenceClassification
    task: text-classification
    tokenizer_type: BertTokenizer
    transformers_version: 5.25.0
mlflow_version: 3.18.0
signature:
  inputs: '[{"type": "string", "required": true}]'
  outputs: '[{"type": "string", "name": "label", "required": true}, {"type": "double", "name": "score",
    "required": true}]'
"""


def test_an_mlflow_transformers_directory_is_served_by_this_runtime(repo: Path, tmp_path: Path) -> None:
    import shutil

    from mlgate.model.mlflow import read_mlmodel
    from mlgate.runtimes import runtime_class

    source = repo / "sentiment" / "hf"
    shutil.copytree(source, tmp_path / "model", ignore=shutil.ignore_patterns("tokenizer*"))
    (tmp_path / "components" / "tokenizer").mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, tmp_path / "components" / "tokenizer" / name)
    (tmp_path / "MLmodel").write_text(MLMODEL)
    manifest = read_mlmodel(tmp_path)
    assert (manifest.runtime, manifest.artifact) == ("transformers", "model")
    runtime = runtime_class(manifest.runtime)(manifest, tmp_path)
    runtime.load()
    expected = _scores(_pipeline("text-classification", source)(TEXTS, top_k=None), list(LABELS.values()))
    got = runtime.predict({"text": np.array([t.encode() for t in TEXTS], dtype=object)}, {})
    np.testing.assert_allclose(got["scores"], expected, atol=1e-5)
