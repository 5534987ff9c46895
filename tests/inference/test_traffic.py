"""Traffic routing (``mlgate.inference.traffic``) and the registry's lookups through a route, over fakes."""

from __future__ import annotations

import random

import pytest

from mlgate.errors import ModelVersionNotFound
from mlgate.inference.registry import ModelRegistry
from mlgate.inference.traffic import TrafficRoute, canary_bucket
from mlgate.model.repository import ModelSource
from tests.fakes import fake_manifest

pytestmark = pytest.mark.anyio


def test_without_a_canary_everything_goes_to_production() -> None:
    assert {TrafficRoute("1").pick("m", key) for key in ("a", "b", None)} == {"1"}
    assert {TrafficRoute("1", canary="2", canary_percent=0).pick("m", key) for key in ("a", "b", None)} == {"1"}


def test_a_keyed_pick_is_sticky_and_follows_the_bucket() -> None:
    route = TrafficRoute("1", canary="2", canary_percent=30)
    for i in range(200):
        key = f"key:{i}"
        expected = "2" if canary_bucket("m", key) < 30 else "1"
        assert route.pick("m", key) == expected == route.pick("m", key)


def test_buckets_are_percentiles_in_steps_of_a_hundredth_and_depend_on_the_model() -> None:
    buckets = [canary_bucket("m", f"k{i}") for i in range(2000)]
    assert all(0 <= b < 100 and round(b, 2) == b for b in buckets)
    assert 0.2 < sum(b < 25 for b in buckets) / len(buckets) < 0.3  # SHA-256 spreads keys evenly
    assert [canary_bucket("other", f"k{i}") for i in range(50)] != buckets[:50]
    assert canary_bucket("m", "k1") == 31.46  # the same on every replica and every run (SHA-256)


def test_an_unkeyed_pick_draws_the_canary_share_at_random(monkeypatch: pytest.MonkeyPatch) -> None:
    route = TrafficRoute("1", canary="2", canary_percent=25)
    monkeypatch.setattr(random, "random", lambda: 0.2499)
    assert route.pick("m") == "2"
    monkeypatch.setattr(random, "random", lambda: 0.25)
    assert route.pick("m") == "1"
    assert TrafficRoute("1", canary="2", canary_percent=100).pick("m") == "2"


def test_versions_are_every_target() -> None:
    route = TrafficRoute("3", aliases={"staging": "4", "old": "1"}, canary="5", canary_percent=10, shadow="6")
    assert route.versions() == {"1", "3", "4", "5", "6"}


async def test_the_registry_resolves_versions_and_aliases_through_the_route(fake_runtimes: None,
                                                                            tmp_path: object) -> None:
    registry = ModelRegistry()
    for version in ("1", "2", "10"):
        await registry.load_model(ModelSource(tmp_path, fake_manifest(version=version)))  # type: ignore[arg-type]
    assert registry.versions("sum") == ["1", "2", "10"]  # numeric order
    assert registry.get("sum").version == "10"  # no route: the highest
    registry.set_route("sum", TrafficRoute("2", aliases={"staging": "10"},
                                           registered=frozenset({"1", "2", "10", "11"})))
    assert registry.get("sum").version == "2"
    assert registry.get("sum", "staging").version == "10"
    assert registry.get("sum", "1").version == "1"
    with pytest.raises(ModelVersionNotFound) as unserved:
        registry.get("sum", "11")
    assert "not served here" in unserved.value.message
    with pytest.raises(ModelVersionNotFound) as unknown:
        registry.get("sum", "12")
    assert "not served here" not in unknown.value.message
    registry.set_route("sum", None)
    assert registry.get("sum").version == "10"
