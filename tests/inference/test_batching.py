"""The dynamic batcher over real runtimes: merged answers equal unbatched ones, its one deadline, its death."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer

from mlgate.errors import BatcherStopped, QueueFull
from mlgate.inference.batching import DynamicBatcher
from mlgate.inference.registry import ThreadExecutor
from mlgate.model.manifest import read_manifest
from mlgate.runtimes import Batch, Runtime, runtime_class
from tests.fakes import wide_model

CANCER = load_breast_cancer().data


def _load(directory: Path) -> Runtime:
    manifest = read_manifest(directory)
    runtime = runtime_class(manifest.runtime)(manifest, directory)
    runtime.load()
    return runtime


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = _load(wide_model(tmp_path_factory.mktemp("wide")))
    yield runtime
    runtime.unload()


@pytest.fixture(scope="module")
def cancer(examples_repo: Path) -> Runtime:
    return _load(examples_repo / "breast-cancer")


def _calls(runtime: Runtime) -> list[int]:
    calls: list[int] = runtime.model.calls  # type: ignore[attr-defined]
    return calls


class Gate:
    """A real executor in front of a runtime that holds every call until ``open`` (to fill the queue)."""

    def __init__(self, runtime: Runtime) -> None:
        self.inner = ThreadExecutor(runtime)
        self.opened = asyncio.Event()
        self.entered = 0

    async def __call__(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        self.entered += 1
        await self.opened.wait()
        return await self.inner(batch, parameters)

    async def close(self) -> None:
        return None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the property: every answer equals the unbatched answer --------------------------------------------

Request = tuple[int, int, float]  # rows, width, scale
requests_strategy = st.lists(
    st.tuples(st.integers(1, 20), st.sampled_from([2, 3]), st.sampled_from([1.0, 2.0])), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=requests_strategy, max_batch_size=st.integers(0, 16), delay_ms=st.sampled_from([0.0, 2.0]),
       seed=st.integers(0, 2**16))
def test_merged_answers_equal_unbatched_answers(
    wide: Runtime, requests: list[Request], max_batch_size: int, delay_ms: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    batches = [{"x": rng.normal(size=(rows, width))} for rows, width, _ in requests]
    params = [{"scale": scale} if scale != 1.0 else {} for _, _, scale in requests]

    async def run() -> list[Batch]:
        batcher = DynamicBatcher(ThreadExecutor(wide), max_batch_size=max_batch_size, max_queue_delay_ms=delay_ms)
        try:
            return await asyncio.gather(*(batcher(b, p) for b, p in zip(batches, params, strict=True)))
        finally:
            await batcher.close()

    _calls(wide).clear()
    answers = anyio.run(run)
    calls = list(_calls(wide))
    assert sum(calls) == sum(rows for rows, _, _ in requests)  # every row computed exactly once
    if max_batch_size:
        assert max(calls) <= max_batch_size
    for batch, param, answer in zip(batches, params, answers, strict=True):
        expected = wide.predict(batch, param)
        assert answer.keys() == expected.keys()
        for name in expected:
            np.testing.assert_array_equal(answer[name], expected[name])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spans=st.lists(st.tuples(st.integers(0, len(CANCER) - 40), st.integers(1, 40)), min_size=1, max_size=10),
       max_batch_size=st.integers(1, 64))
def test_breast_cancer_merged_answers_equal_unbatched(
    cancer: Runtime, spans: list[tuple[int, int]], max_batch_size: int
) -> None:
    batches = [{"features": CANCER[start:start + rows]} for start, rows in spans]

    async def run() -> list[Batch]:
        batcher = DynamicBatcher(ThreadExecutor(cancer), max_batch_size=max_batch_size, max_queue_delay_ms=1.0)
        try:
            return await asyncio.gather(*(batcher(b, {}) for b in batches))
        finally:
            await batcher.close()

    for batch, answer in zip(batches, anyio.run(run), strict=True):
        expected = cancer.predict(batch, {})
        np.testing.assert_array_equal(answer["predict"], expected["predict"])
        # Same rows, different matrix shapes: BLAS may round the last bit differently.
        np.testing.assert_allclose(answer["predict_proba"], expected["predict_proba"], rtol=1e-12, atol=0)


# -- merging, splitting, grouping -------------------------------------------------------------------------

@pytest.mark.anyio
async def test_queued_requests_merge_into_one_call_and_a_large_one_is_split(wide: Runtime) -> None:
    gate = Gate(wide)
    batcher = DynamicBatcher(gate, max_batch_size=8, max_queue_delay_ms=0.0)
    _calls(wide).clear()
    first = asyncio.create_task(batcher({"x": np.ones((1, 2))}, {}))
    while gate.entered < 1:
        await asyncio.sleep(0.001)
    # While the first call runs: 3 small requests, one of 19 rows, one of another width, one with parameters.
    small = [asyncio.create_task(batcher({"x": np.full((2, 2), i)}, {})) for i in range(3)]
    large = asyncio.create_task(batcher({"x": np.arange(38.0).reshape(19, 2)}, {}))
    other_width = asyncio.create_task(batcher({"x": np.ones((1, 3))}, {}))
    scaled = asyncio.create_task(batcher({"x": np.ones((1, 2))}, {"scale": 3}))
    while batcher.queue_depth < 6:
        await asyncio.sleep(0.001)
    gate.opened.set()
    await asyncio.gather(first, *small, large, other_width, scaled)
    # The first alone; the 3 small ones merged (the next chunk, 8 rows, does not fit); the large one's chunks
    # of 8, 8 and 3 rows; then the other width and the other parameters, each on its own.
    assert _calls(wide) == [1, 6, 8, 8, 3, 1, 1]
    np.testing.assert_array_equal(large.result()["total"], np.arange(38.0).reshape(19, 2).sum(axis=1))
    assert other_width.result()["width"].tolist() == [3]
    assert scaled.result()["total"].tolist() == [6.0]
    for i, task in enumerate(small):
        assert task.result()["total"].tolist() == [2.0 * i, 2.0 * i]
    await batcher.close()


@pytest.mark.anyio
async def test_a_preferred_batch_size_goes_without_waiting_out_the_delay(wide: Runtime) -> None:
    batcher = DynamicBatcher(ThreadExecutor(wide), max_batch_size=64, max_queue_delay_ms=600_000.0,
                             preferred_batch_sizes=(3,))
    _calls(wide).clear()
    with anyio.fail_after(10):  # the delay is 10 minutes: only the preferred size can send this batch
        await asyncio.gather(*(batcher({"x": np.ones((1, 2))}, {}) for _ in range(3)))
    assert _calls(wide) == [3]
    await batcher.close()


@pytest.mark.anyio
async def test_a_filling_batch_goes_when_arrivals_fill_it_whatever_else_arrives(wide: Runtime) -> None:
    # The collector sleeps while a batch fills and is woken only once enough rows may have arrived; rows of
    # another kind (another width) count toward that but must not make it miss the moment the batch is full.
    batcher = DynamicBatcher(ThreadExecutor(wide), max_batch_size=4, max_queue_delay_ms=600_000.0)
    _calls(wide).clear()
    tasks = [asyncio.create_task(batcher({"x": np.ones((1, 2))}, {}))]
    await asyncio.sleep(0.02)  # the collector is waiting for the batch to fill
    tasks.append(asyncio.create_task(batcher({"x": np.ones((3, 3))}, {})))  # another kind: wakes it early
    await asyncio.sleep(0.02)
    for rows in (2, 1):  # 1 + 2 + 1 = 4 rows of the first kind: full
        tasks.append(asyncio.create_task(batcher({"x": np.ones((rows, 2))}, {})))
        await asyncio.sleep(0.02)
    with anyio.fail_after(10):  # the delay is 10 minutes: only a full batch can go before it
        await asyncio.gather(tasks[0], tasks[2], tasks[3])
    assert _calls(wide) == [4]
    assert not tasks[1].done()  # 3 rows of the other kind still wait for their own batch
    tasks.append(asyncio.create_task(batcher({"x": np.ones((1, 3))}, {})))
    with anyio.fail_after(10):
        await asyncio.gather(tasks[1], tasks[4])
    assert _calls(wide) == [4, 4]
    await batcher.close()


@pytest.mark.anyio
async def test_each_preferred_size_sends_a_filling_batch(wide: Runtime) -> None:
    batcher = DynamicBatcher(ThreadExecutor(wide), max_batch_size=64, max_queue_delay_ms=600_000.0,
                             preferred_batch_sizes=(3, 5))
    _calls(wide).clear()
    with anyio.fail_after(10):  # the delay is 10 minutes: only a preferred size can send these batches
        for rows_each, expected in (((1, 1, 1), [3]), ((4, 1), [3, 5])):  # 4 rows are past 3: 5 is next
            tasks = []
            for rows in rows_each:  # one request at a time, the collector waiting in between
                tasks.append(asyncio.create_task(batcher({"x": np.ones((rows, 2))}, {})))
                await asyncio.sleep(0.02)
            await asyncio.gather(*tasks)
            assert _calls(wide) == expected
    await batcher.close()


# -- the batch's one deadline, from the injected clock -----------------------------------------------------

@pytest.mark.anyio
async def test_the_deadline_is_computed_once_from_the_first_request(wide: Runtime) -> None:
    clock = FakeClock()
    batcher = DynamicBatcher(ThreadExecutor(wide), max_batch_size=64, max_queue_delay_ms=600_000.0, clock=clock)
    _calls(wide).clear()
    first = asyncio.create_task(batcher({"x": np.ones((1, 2))}, {}))
    second = asyncio.create_task(batcher({"x": np.ones((2, 2))}, {}))
    await asyncio.sleep(0.05)
    assert not first.done() and not second.done()  # 10 minutes of delay, 3 of 64 rows: the batch waits
    clock.now += 600.001  # the first request's deadline has passed
    # A third request wakes the collector, which must see the first request's deadline as passed rather
    # than start a new delay (re-subtracting elapsed time from a fresh deadline would wait 10 more minutes).
    third = asyncio.create_task(batcher({"x": np.ones((1, 2))}, {}))
    with anyio.fail_after(10):
        await asyncio.gather(first, second, third)
    assert _calls(wide) == [4]
    await batcher.close()


# -- the queue bound and the collector's death ------------------------------------------------------------

@pytest.mark.anyio
async def test_a_full_queue_refuses_requests(wide: Runtime) -> None:
    gate = Gate(wide)
    batcher = DynamicBatcher(gate, max_queue_size=2)
    held = [asyncio.create_task(batcher({"x": np.ones((1, 2))}, {}))]
    while gate.entered < 1:
        await asyncio.sleep(0.001)
    held += [asyncio.create_task(batcher({"x": np.ones((1, 2))}, {})) for _ in range(2)]
    while batcher.queue_depth < 2:
        await asyncio.sleep(0.001)
    with pytest.raises(QueueFull) as refused:
        await batcher({"x": np.ones((1, 2))}, {})
    assert refused.value.status == 503 and refused.value.retry_after_s
    gate.opened.set()
    await asyncio.gather(*held)
    await batcher.close()


@pytest.mark.anyio
async def test_a_cancelled_request_leaves_the_queue(wide: Runtime) -> None:
    gate = Gate(wide)
    batcher = DynamicBatcher(gate, max_batch_size=4)
    running = asyncio.create_task(batcher({"x": np.ones((1, 2))}, {}))
    while gate.entered < 1:
        await asyncio.sleep(0.001)
    with anyio.move_on_after(0.05):
        await batcher({"x": np.ones((9, 2))}, {})  # three chunks, queued behind the running call
    assert batcher.queue_depth == 0
    _calls(wide).clear()
    gate.opened.set()
    await running
    assert _calls(wide) == [1]
    await batcher.close()


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["cancelled", "raised"])
async def test_when_the_collector_dies_every_queued_request_fails(wide: Runtime, how: str) -> None:
    gate = Gate(wide)
    batcher: DynamicBatcher

    def clock() -> float:  # a real clock that breaks inside the collector, once the test says so
        if broken and asyncio.current_task() is batcher._collector:
            raise RuntimeError("clock broke")
        return asyncio.get_running_loop().time()

    broken = False
    batcher = DynamicBatcher(gate, max_batch_size=4, max_queue_delay_ms=0.0, clock=clock)
    running = asyncio.create_task(batcher({"x": np.ones((1, 2))}, {}))
    while gate.entered < 1:
        await asyncio.sleep(0.001)
    queued = [asyncio.create_task(batcher({"x": np.ones((1, 2))}, {})) for _ in range(3)]
    while batcher.queue_depth < 3:
        await asyncio.sleep(0.001)
    assert batcher._collector is not None
    if how == "cancelled":
        batcher._collector.cancel()
    else:
        broken = True
        gate.opened.set()  # the running call ends, the collector forms the next batch and hits the clock
    with anyio.fail_after(10):
        results = await asyncio.gather(*queued, return_exceptions=True)
    assert all(isinstance(r, BatcherStopped) for r in results), results
    with pytest.raises(BatcherStopped):
        await batcher({"x": np.ones((1, 2))}, {})
    gate.opened.set()
    assert (await running)["total"].tolist() == [2.0]  # dispatched before the collector died: still answered
    await batcher.close()
