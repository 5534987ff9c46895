"""Rate limits and quotas count per user: a user's API keys and access tokens share one budget, so making more
keys does not multiply it; the number of active keys per user is capped (setting max_active_keys_per_user);
a per-key tier can limit each key on top (setting rate_limit_key_tier). Real app, real HTTP (ASGI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.errors import Conflict
from tests.secure import TEST_ACTOR, bearer, secure_app, v2_body

pytestmark = pytest.mark.anyio

INFER = "/v2/models/breast-cancer/infer"


async def test_keys_and_tokens_of_a_user_share_the_limit(examples_repo: Path) -> None:
    async with secure_app(examples_repo, rate_limit_tiers={"default": {"requests": "4/minute"}}) as sec:
        await sec.user("alice")
        await sec.user("bob")
        first, second = await sec.key("alice", name="one"), await sec.key("alice", name="two")
        token = await sec.token("alice")
        codes = []
        for credential in (first, second, token, first, second, token):
            codes.append((await sec.client.post(INFER, json=v2_body(), headers=bearer(credential))).status_code)
        assert codes == [200, 200, 200, 200, 429, 429]  # 4 per minute for alice, however she asks
        refused = await sec.client.post(INFER, json=v2_body(), headers=bearer(second))
        assert refused.json()["code"] == "rate_limited"
        bob = await sec.key("bob")  # another user has his own budget
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(bob))).status_code == 200


async def test_daily_quota_is_per_user(examples_repo: Path) -> None:
    async with secure_app(examples_repo, rate_limit_tiers={"default": {"daily_rows": 5}}) as sec:
        await sec.user("alice")
        keys = [await sec.key("alice", name=f"k{i}") for i in range(3)]
        codes = [(await sec.client.post(INFER, json=v2_body(), headers=bearer(k))).status_code for k in keys]
        assert codes == [200, 429, 429]  # 3 rows each: the second key does not get a fresh 5


async def test_active_keys_per_user_are_capped(examples_repo: Path) -> None:
    async with secure_app(examples_repo, max_active_keys_per_user=2) as sec:
        await sec.user("alice")
        token = await sec.token("alice")
        made = [await sec.client.post("/api/v1/keys", json={"name": f"k{i}"}, headers=bearer(token))
                for i in range(3)]
        assert [r.status_code for r in made] == [201, 201, 409], made[-1].text
        body = made[-1].json()
        assert body["code"] == "too_many_keys" and "max_active_keys_per_user" in body["error"], body
        prefix = made[0].json()["prefix"]
        assert (await sec.client.delete(f"/api/v1/keys/{prefix}", headers=bearer(token))).status_code == 200
        again = await sec.client.post("/api/v1/keys", json={"name": "k3"}, headers=bearer(token))
        assert again.status_code == 201, again.text  # a revoked key frees its place
        with pytest.raises(Conflict):  # the same cap for keys made by an admin or the CLI
            await sec.store.create_key("alice", "by admin", actor=TEST_ACTOR)


async def test_a_per_key_tier_limits_each_key_on_top(examples_repo: Path) -> None:
    async with secure_app(examples_repo, rate_limit_key_tier="per-key",
                          rate_limit_tiers={"default": {"requests": "5/minute"}, "per-key": {"requests": "2/minute"}},
                          ) as sec:
        await sec.user("alice")
        one, two, three = [await sec.key("alice", name=n) for n in ("one", "two", "three")]
        codes = [(await sec.client.post(INFER, json=v2_body(), headers=bearer(k))).status_code
                 for k in (one, one, one, two, two, two, three, three)]
        # Each key 2 per minute on its own, alice 5 in total; a try its key refuses is not charged to alice.
        assert codes == [200, 200, 429, 200, 200, 429, 200, 429]
