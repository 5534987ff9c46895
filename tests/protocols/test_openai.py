"""OpenAI-compatible POST /v1/embeddings, driven by the official `openai` SDK against a real `mlgate serve`."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from mlgate.app import create_app
from mlgate.auth import Actor
from mlgate.settings import Settings

SENTENCES = ["The cat sits outside.", "A man is playing guitar.", "The new movie is awesome."]


@pytest.fixture(scope="module")
def sdk(embeddings_server: str, embeddings_key: str) -> Iterator[openai.OpenAI]:
    """The SDK with a real API key: it sends it as ``Authorization: Bearer <key>``."""
    client = openai.OpenAI(base_url=f"http://{embeddings_server}/v1", api_key=embeddings_key, max_retries=0,
                           timeout=60)
    yield client
    client.close()


def test_a_wrong_api_key_is_an_authentication_error(embeddings_server: str) -> None:
    # A value shaped like an mlgate key that is not one is refused; a value that cannot be an mlgate credential
    # at all (the SDK's placeholder, another vendor's key) counts as none (docs/security.md).
    wrong = "mlg_000000000000_" + "x" * 43
    with openai.OpenAI(base_url=f"http://{embeddings_server}/v1", api_key=wrong, max_retries=0) as client, \
            pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="minilm", input="hello")


def test_float_embeddings_equal_sentence_transformers(sdk: openai.OpenAI, sentence_transformer: Any) -> None:
    result = sdk.embeddings.create(model="minilm", input=SENTENCES, encoding_format="float")
    assert result.object == "list" and result.model == "minilm"
    assert [d.index for d in result.data] == [0, 1, 2] and all(d.object == "embedding" for d in result.data)
    got = np.array([d.embedding for d in result.data], dtype=np.float32)
    np.testing.assert_allclose(got, sentence_transformer.encode(SENTENCES), rtol=0, atol=1e-6)
    tokens = sum(len(ids) for ids in sentence_transformer.tokenizer(SENTENCES)["input_ids"])
    assert result.usage.prompt_tokens == tokens == result.usage.total_tokens


def test_base64_embeddings_are_little_endian_float32(sdk: openai.OpenAI, sentence_transformer: Any) -> None:
    result = sdk.embeddings.create(model="minilm", input="The cat sits outside.", encoding_format="base64",
                                   dimensions=384)
    assert len(result.data) == 1
    encoded = result.data[0].embedding
    assert isinstance(encoded, str)
    vector = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    assert vector.shape == (384,)
    np.testing.assert_allclose(vector, sentence_transformer.encode(["The cat sits outside."])[0], atol=1e-6)
    assert result.usage.prompt_tokens == len(sentence_transformer.tokenizer("The cat sits outside.")["input_ids"])


def test_unsupported_dimensions_is_a_clear_400(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model="minilm", input="hello", dimensions=128)
    body = caught.value.response.json()
    assert body["code"] == "unsupported_feature" and body["field"] == "dimensions"
    assert "384" in body["error"] and "128" in body["error"]


def test_unknown_model_is_404(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.embeddings.create(model="no-such-model", input="hello")
    assert caught.value.response.json()["code"] == "model_not_found"


def test_model_that_is_not_an_embedding_model_is_400(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model="breast-cancer", input="hello")
    body = caught.value.response.json()
    assert body["code"] == "unsupported_model" and body["field"] == "model"
    assert "not an embedding model" in body["error"] and "features FP64 [-1, 30]" in body["error"]


def test_token_arrays_are_refused(sdk: openai.OpenAI) -> None:
    for tokens in ([101, 7592, 102], [[101, 7592, 102], [101, 102]]):
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.embeddings.create(model="minilm", input=tokens)
        body = caught.value.response.json()
        assert body["code"] == "unsupported_feature" and "token arrays" in body["error"]


@pytest.mark.parametrize(("body", "field", "fragment"), [
    ({"model": "minilm", "input": []}, "input", "empty"),
    ({"model": "minilm", "input": ["ok", 3]}, "input[1]", "expected a string"),
    ({"model": "minilm", "input": {"text": "x"}}, "input", "an object"),
    ({"model": "minilm", "input": ["x"] * 2049}, "input", "at most 2048"),
    ({"model": "minilm"}, "input", "missing"),
    ({"input": "x"}, "model", "missing"),
    ({"model": "minilm", "input": "x", "encoding_format": "int8"}, "encoding_format", "float"),
    ({"model": "minilm", "input": "x", "dimensions": 0}, "dimensions", "greater than or equal to 1"),
    ({"model": "minilm", "input": "x", "temperature": 1}, "temperature", "unknown field"),
    (["minilm", "x"], "body", "JSON object"),
])
def test_bad_bodies_are_400_with_the_field(embeddings_server: str, body: Any, field: str, fragment: str) -> None:
    response = httpx.post(f"http://{embeddings_server}/v1/embeddings", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["field"] == field and fragment in error["error"]


@pytest.mark.anyio
async def test_async_sdk_against_the_app_in_process(
    embeddings_repo: Path, sentence_transformer: Any, tmp_path: Path
) -> None:
    """The same answers through AsyncOpenAI over httpx's ASGI transport (the real app, no socket)."""
    app = create_app(Settings(model_repository=embeddings_repo, data_dir=tmp_path))
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        store = app.state.mlgate.security.store
        await store.create_user("sdk", "sdk password", actor=Actor("test"))
        key, _ = await store.create_key("sdk", "async sdk", models=["minilm"], actor=Actor("test"))
        client = openai.AsyncOpenAI(base_url="http://mlgate.test/v1", api_key=key, http_client=http, max_retries=0)
        result = await client.embeddings.create(model="minilm", input=SENTENCES[:2], encoding_format="base64")
    got = np.stack([np.frombuffer(base64.b64decode(str(d.embedding)), dtype="<f4") for d in result.data])
    np.testing.assert_allclose(got, sentence_transformer.encode(SENTENCES[:2]), atol=1e-6)


def test_openapi_documents_the_embeddings_route(embeddings_server: str) -> None:
    schema = httpx.get(f"http://{embeddings_server}/openapi.json").json()
    body = schema["paths"]["/v1/embeddings"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"] == "#/components/schemas/EmbeddingRequest"
    assert set(schema["components"]["schemas"]["EmbeddingRequest"]["properties"]) >= {
        "input", "model", "encoding_format", "dimensions"}


@pytest.mark.anyio
async def test_limits_are_shared_between_openai_and_v2_routes_for_the_same_model(
    embeddings_repo: Path, sentence_transformer: Any, tmp_path: Path
) -> None:
    """Switching protocol does not reset a counter: requests, and rows/tokens, are counted per model."""
    tokens = sum(len(ids) for ids in sentence_transformer.tokenizer(SENTENCES)["input_ids"])
    # Per hour, not per minute: the limiter's sliding window weighs the previous window's count by the share
    # of it still inside the window, so requests that straddle a minute boundary on a slow machine could
    # let a fifth one through. An hour's boundary is 60 times rarer to straddle.
    tiers = {"default": {"requests": "4/hour"}, "metered": {"rows": f"{tokens + 2}/hour"}}
    app = create_app(Settings(model_repository=embeddings_repo, data_dir=tmp_path, rate_limit_tiers=tiers))
    v2_body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a b", "c d"]}]}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://mlgate.test") as http:
        store = app.state.mlgate.security.store
        await store.create_user("sdk", "sdk password", actor=Actor("test"))
        key, _ = await store.create_key("sdk", "requests", actor=Actor("test"))
        metered, _ = await store.create_key("sdk", "tokens", tier="metered", actor=Actor("test"))
        client = openai.AsyncOpenAI(base_url="http://mlgate.test/v1", api_key=key, http_client=http, max_retries=0)
        auth = {"Authorization": f"Bearer {key}"}
        await client.embeddings.create(model="minilm", input="one")
        assert (await http.post("/v2/models/minilm/infer", json=v2_body, headers=auth)).status_code == 200
        assert (await http.get("/v2/models/minilm", headers=auth)).status_code == 200
        await client.embeddings.create(model="minilm", input="four")
        with pytest.raises(openai.RateLimitError):
            await client.embeddings.create(model="minilm", input="five")
        assert (await http.post("/v2/models/minilm/infer", json=v2_body, headers=auth)).status_code == 429
        # Tokens: the first call spends `tokens`; 2 are left, so 3 texts (at least 3 tokens) are refused before
        # the model runs, while a V2 request of 2 texts (2 rows) still fits, and then nothing does.
        client = openai.AsyncOpenAI(base_url="http://mlgate.test/v1", api_key=metered, http_client=http,
                                    max_retries=0)
        auth = {"Authorization": f"Bearer {metered}"}
        first = await client.embeddings.create(model="minilm", input=SENTENCES)
        assert first.usage.prompt_tokens == tokens
        with pytest.raises(openai.RateLimitError):
            await client.embeddings.create(model="minilm", input=SENTENCES)
        assert (await http.post("/v2/models/minilm/infer", json=v2_body, headers=auth)).status_code == 200
        refused = await http.post("/v2/models/minilm/infer", json=v2_body, headers=auth)
        assert refused.status_code == 429 and "rows" in refused.json()["error"]
