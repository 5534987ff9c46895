"""The data plane over fake runtimes (tests/fakes.py): lookups, input checks, errors, deadlines, observers.

No HTTP and no model files: each test loads real ``Runtime`` subclasses through the registry's own loading
path and calls the data plane as a protocol module does.
"""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
import pytest

from mlgate.errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelError,
    ModelNotFound,
    ModelNotReady,
    ModelVersionNotFound,
)
from mlgate.inference.dataplane import Call, DataPlane
from mlgate.inference.registry import ModelHandle, ModelState
from mlgate.model.repository import ModelSource
from mlgate.settings import Settings
from tests.fakes import SlowRuntime, fake_manifest

pytestmark = pytest.mark.anyio

ROWS = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


async def _load(plane: DataPlane, name: str = "sum", runtime: str = "fake-sum", version: str = "1",
                **fields: Any) -> ModelHandle:
    manifest = fake_manifest(name, runtime, version, **fields)
    return await plane.registry.load_model(ModelSource(plane.settings.data_dir, manifest))


async def test_infer_answers_each_row_and_passes_the_parameters(plane: DataPlane) -> None:
    handle = await _load(plane)
    assert handle.state is ModelState.READY and handle.runtime.loads == 1  # type: ignore[union-attr]
    outputs = await plane.infer(plane.model("sum"), {"x": ROWS}, {"scale": 2})
    np.testing.assert_array_equal(outputs["sum"], [12.0, 30.0])
    assert handle.in_flight == 0


async def test_lookups_name_what_is_missing(plane: DataPlane) -> None:
    await _load(plane, version="1")
    await _load(plane, version="2")
    assert plane.model("sum").version == "2"  # the highest version without a route
    assert plane.model("sum", "1").version == "1"
    with pytest.raises(ModelNotFound):
        plane.model("nope")
    with pytest.raises(ModelVersionNotFound) as missing:
        plane.model("sum", "3")
    assert "1" in missing.value.message and "2" in missing.value.message


async def test_a_model_that_failed_to_load_is_503_and_metadata_says_so(plane: DataPlane) -> None:
    handle = await _load(plane, "broken", "fake-failing-load")
    assert handle.state is ModelState.FAILED and handle.reason == "the artifact is corrupt"
    assert plane.model_status("broken") is handle
    with pytest.raises(ModelNotReady) as refused:
        plane.model("broken")
    assert "failed to load" in refused.value.message and "corrupt" not in refused.value.message


@pytest.mark.parametrize(("inputs", "field", "words"), [
    pytest.param({}, "inputs", "missing input 'x'", id="missing"),
    pytest.param({"x": np.ones((2, 2))}, "inputs[x].shape", "has shape [2, 2]", id="wrong-shape"),
    pytest.param({"x": np.ones(3)}, "inputs[x].shape", "expects [-1, 3]", id="wrong-rank"),
    pytest.param({"x": np.ones((0, 3))}, "inputs", "the batch is empty", id="empty-batch"),
    pytest.param({"x": np.array([[1.0, np.nan, 3.0]])}, "inputs[x].data", "first at flat index 1", id="nan"),
    pytest.param({"x": np.array([[1.0, 2.0, np.inf]])}, "inputs[x].data", "NaN or Infinity", id="inf"),
])
async def test_bad_inputs_are_400_naming_the_field(plane: DataPlane, inputs: dict[str, np.ndarray], field: str,
                                                   words: str) -> None:
    await _load(plane)
    with pytest.raises(InvalidInput) as refused:
        await plane.infer(plane.model("sum"), inputs)
    assert refused.value.field == field and words in refused.value.message
    assert plane.metrics.registry.get_sample_value(
        "mlgate_requests_total", {"model": "sum", "version": "1", "status": "400"}) == 1


async def test_unequal_batch_sizes_are_400(plane: DataPlane) -> None:
    manifest_inputs = [{"name": "x", "datatype": "FP64", "shape": [-1, 3]},
                       {"name": "w", "datatype": "FP64", "shape": [-1]}]
    await _load(plane, inputs=manifest_inputs)
    with pytest.raises(InvalidInput) as refused:
        await plane.infer(plane.model("sum"), {"x": ROWS, "w": np.ones(3)})
    assert refused.value.field == "inputs" and "different batch sizes" in refused.value.message


@pytest.mark.parametrize("runtime", ["fake-error", "fake-wrong-batch"])
async def test_a_model_bug_is_a_500_without_its_details(plane: DataPlane, runtime: str) -> None:
    await _load(plane, runtime=runtime)
    with pytest.raises(ModelError) as failed:
        await plane.infer(plane.model("sum"), {"x": ROWS})
    assert failed.value.status == 500 and "secret" not in failed.value.message
    assert "X-Request-ID" in failed.value.message


async def test_the_deadline_is_the_lower_of_the_models_and_the_callers(plane: DataPlane) -> None:
    handle = await _load(plane, "slow", "fake-slow", timeout_ms=5000)
    assert plane.timeout_ms(handle) == 5000
    assert plane.timeout_ms(handle, 20) == 20
    assert plane.timeout_ms(handle, 10_000) == 5000  # the caller cannot raise it
    runtime = handle.runtime
    assert isinstance(runtime, SlowRuntime)
    try:
        with pytest.raises(DeadlineExceeded) as late:
            await plane.infer(handle, {"x": ROWS}, timeout_ms=20)
        assert "within 20 ms" in late.value.message and late.value.status == 504
        assert handle.in_flight == 0
    finally:
        runtime.gate.set()


async def test_an_unloaded_model_is_released_and_no_longer_found(plane: DataPlane) -> None:
    handle = await _load(plane)
    runtime = handle.runtime
    await plane.registry.unload_model(handle)
    assert handle.state is ModelState.UNLOADED and handle.runtime is None and handle.executor is None
    assert runtime.unloads == 1  # type: ignore[union-attr]
    with pytest.raises(ModelNotFound):
        plane.model("sum")


async def test_serving_holds_the_model_and_tells_every_observer_once(plane: DataPlane) -> None:
    handle = await _load(plane)
    seen: list[tuple[Call, int]] = []

    def broken_observer(call: Call, status: int, latency_ms: float) -> None:
        raise RuntimeError("an observer's bug")

    plane = DataPlane(plane.settings, plane.registry, observers=[
        lambda call, status, latency_ms: seen.append((call, status)), broken_observer])  # composed, then passed in
    async with plane.serving("sum", caller="key:abc") as call:
        assert handle.in_flight == 1  # held from the lookup on, before any await
        await call.infer({"x": ROWS})
    assert handle.in_flight == 0
    with pytest.raises(InvalidInput):
        async with plane.serving("sum") as failing:
            await failing.infer({"x": np.ones((2, 2))})
    assert [(c.caller, c.batch_size, s) for c, s in seen] == [("key:abc", 2, 200), (None, 2, 400)]
    np.testing.assert_array_equal(seen[0][0].outputs["sum"], [6.0, 15.0])  # type: ignore[index]


async def test_a_rollout_can_drain_a_version_while_a_request_runs(plane: DataPlane) -> None:
    handle = await _load(plane, "slow", "fake-slow")
    runtime = handle.runtime
    assert isinstance(runtime, SlowRuntime)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(plane.infer, handle, {"x": ROWS})
        await anyio.to_thread.run_sync(runtime.started.wait, 10)
        assert handle.in_flight == 1
        assert await handle.drain(0.01) is False  # still running
        runtime.gate.set()
        assert await handle.drain(10) is True
    assert handle.in_flight == 0


async def test_readiness_waits_for_loading_and_strict_readiness_for_every_model(plane: DataPlane,
                                                                                  tmp_path: Any) -> None:
    await _load(plane)
    await _load(plane, "broken", "fake-failing-load")
    assert plane.ready() and plane.live()
    plane.loaded = False
    assert not plane.ready()
    strict = DataPlane(Settings(data_dir=tmp_path, strict_readiness=True), plane.registry)
    strict.loaded = True
    assert not strict.ready()
    await plane.registry.unload_model(plane.registry.get("broken"))
    assert strict.ready()


async def test_metadata_follows_the_runtime(plane: DataPlane) -> None:
    await _load(plane)
    meta = plane.model_metadata("sum")
    assert (meta.name, meta.versions, meta.platform) == ("sum", ["1"], "fake")
    assert [(t.name, t.datatype, t.shape) for t in meta.inputs] == [("x", "FP64", [-1, 3])]
    assert [(t.name, t.datatype, t.shape) for t in meta.outputs] == [("sum", "FP64", [-1])]
    assert plane.server_metadata().extensions == ["classification", "binary_tensor_data"]
