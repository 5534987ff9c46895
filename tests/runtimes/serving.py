"""Helpers of the runtime tests: ask a real `mlgate serve` process through tritonclient (V2) and V1, and check
that bad inputs are refused with a 4xx naming the field."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tritonclient.http as triton

from mlgate.datatypes import datatype_of


def triton_infer(url: str, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
                 *, binary: bool = True) -> dict[str, np.ndarray]:
    """``{input: array}`` -> ``{output: array}`` through the official Triton HTTP client."""
    client = triton.InferenceServerClient(url=url)
    try:
        assert client.is_model_ready(model), f"{model} is not ready"
        request = []
        for name, array in inputs.items():
            tensor = triton.InferInput(name, list(array.shape), datatype_of(array.dtype))
            tensor.set_data_from_numpy(array, binary_data=binary)
            request.append(tensor)
        wanted = [triton.InferRequestedOutput(name, binary_data=binary) for name in outputs]
        result = client.infer(model, request, outputs=wanted)
        return {name: result.as_numpy(name) for name in outputs}
    finally:
        client.close()


def triton_metadata(url: str, model: str) -> dict[str, Any]:
    client = triton.InferenceServerClient(url=url)
    try:
        metadata: dict[str, Any] = client.get_model_metadata(model)
        return metadata
    finally:
        client.close()


def v1_predict(url: str, model: str, instances: list[Any]) -> list[Any]:
    """The ``predictions`` of ``POST /v1/models/{model}:predict`` with ``instances``."""
    response = httpx.post(f"http://{url}/v1/models/{model}:predict", json={"instances": instances}, timeout=60)
    assert response.status_code == 200, response.text
    predictions: list[Any] = response.json()["predictions"]
    return predictions


def _v2_input(name: str, array: np.ndarray, datatype: str | None = None) -> dict[str, Any]:
    data = [v.decode() if isinstance(v, bytes) else v for v in array.ravel().tolist()]
    return {"name": name, "shape": list(array.shape), "datatype": datatype or datatype_of(array.dtype),
            "data": data}


def assert_bad_inputs_refused(url: str, model: str, good: Mapping[str, np.ndarray]) -> None:
    """Wrong datatype, wrong shape, unknown name and a missing input each get a 4xx JSON error naming a field.

    ``good`` is a request the model answers (checked first); its first input is the one spoiled.
    """
    endpoint = f"http://{url}/v2/models/{model}/infer"
    inputs = [_v2_input(n, a) for n, a in good.items()]
    ok = httpx.post(endpoint, json={"inputs": inputs}, timeout=60)
    assert ok.status_code == 200, ok.text
    first = next(iter(good))
    array = good[first]
    wrong_type = "BYTES" if array.dtype.kind in "fiub" else "FP32"
    flat = array.reshape(array.shape[0], -1)
    spoiled = {
        "datatype": _v2_input(first, array, wrong_type) | {"data": ["x"] * array.size if wrong_type == "BYTES"
                                                          else [0.5] * array.size},
        "shape": _v2_input(first, np.concatenate([flat, flat[:, :1]], axis=1)),  # one column too many
        "name": _v2_input("no-such-input", array),
    }
    for what, replacement in spoiled.items():
        body = {"inputs": [replacement, *inputs[1:]]}
        response = httpx.post(endpoint, json=body, timeout=60)
        assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
        error = response.json()
        assert error["code"] and error["error"] and error["field"], (what, error)
    if len(inputs) > 1:
        missing = httpx.post(endpoint, json={"inputs": inputs[1:]}, timeout=60)
        assert 400 <= missing.status_code < 500 and missing.json()["field"], missing.text
    else:
        missing = httpx.post(endpoint, json={"inputs": []}, timeout=60)
        assert 400 <= missing.status_code < 500 and missing.json()["field"], missing.text


def load_failures(log: Path) -> dict[str, str]:
    """Model -> reason, for each model a server's JSON log says failed to load (libraries print other lines)."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return {line["model"]: line["reason"] for line in lines if line.get("event") == "model failed to load"}
