"""What the fakes do as their clock moves, as the Redis scripts do with ``TIME`` (the rest of
their contracts is checked against Redis itself: integration/test_*_contracts.py)."""

from __future__ import annotations

from fakes import Clock, MemoryHistory, MemoryLimits, MemoryPresence, MemorySessions, PresenceState

from chat.models import UserRef


async def test_a_bucket_refills_at_its_rate_up_to_its_burst():
    clock = Clock()
    limits = MemoryLimits(clock)
    assert await limits.take("send", "ann", 2.0, 4, want=4) == (4, 0)
    assert await limits.take("send", "ann", 2.0, 4) == (0, 0.5)
    clock.advance(0.5)
    assert await limits.take("send", "ann", 2.0, 4, want=4) == (1, 0)
    clock.advance(60)
    assert await limits.take("send", "ann", 2.0, 4, want=9) == (4, 0)


async def test_cool_downs_double_with_each_lockout_up_to_the_cap():
    clock = Clock()
    limits = MemoryLimits(clock, login_cooldown_s=1, login_cooldown_max_s=3)
    counters = {"k": 2}
    seen = []
    for _ in range(4):
        await limits.cooldown("fail", counters)
        seen.append(await limits.cooldown("fail", counters))
        assert await limits.cooldown("fail", counters) == seen[-1]  # not counted while cooling
        clock.advance(seen[-1])
    assert seen == [1, 2, 3, 3]


async def test_revocations_and_onces_expire():
    clock = Clock()
    limits = MemoryLimits(clock)
    await limits.revoke("j", 10)
    assert await limits.once("typing", "ann", 2)
    clock.advance(2)
    assert await limits.once("typing", "ann", 2) and await limits.is_revoked("j")
    clock.advance(8)
    assert not await limits.is_revoked("j")


async def test_families_expire_and_the_grace_of_a_rotation_ends():
    clock = Clock()
    sessions = MemorySessions(clock)
    await sessions.start("ann", "f", "d1", 10_000, 5)
    await sessions.rotate("ann", "f", "d1", "d2", 10_000, 1_000)
    clock.advance(0.5)
    assert await sessions.rotate("ann", "f", "d1", "x", 10_000, 1_000) == ("grace", 0)
    clock.advance(1)
    assert await sessions.rotate("ann", "f", "d1", "x", 10_000, 1_000) == ("reused", 0)
    await sessions.start("ann", "g", "e1", 10_000, 5)
    clock.advance(10)
    assert await sessions.rotate("ann", "g", "e1", "e2", 10_000, 1_000) == ("unknown", 0)


async def test_a_retry_record_lives_ten_minutes_from_its_last_use():
    clock = Clock()
    history = MemoryHistory(clock)
    ann = UserRef("ann", "Ann")
    first, _ = await history.append("m1", "r", ann, "x", None, "t")
    clock.advance(9 * 60)
    assert await history.append("m2", "r", ann, "x", None, "t") == (first, False)
    clock.advance(9 * 60)
    assert (await history.append("m3", "r", ann, "x", None, "t"))[1] is False
    clock.advance(11 * 60)
    later, created = await history.append("m4", "r", ann, "x", None, "t")
    assert created and later.seq == 2 and later.ts > first.ts


async def test_a_lease_lapses_unless_renewed():
    state = PresenceState()
    one, two = MemoryPresence(state, "n1"), MemoryPresence(state, "n2")
    assert await one.renew("i1", 15_000) is False  # no lease before
    await two.renew("i2", 15_000)
    state.clock.advance(10)
    assert await one.renew("i1", 15_000) is True
    assert await two.dead_nodes() == [] and await one.dead_nodes() == []
    state.clock.advance(16)
    assert await two.dead_nodes() == [("n1", "i1")]
    assert await two.claim_purge("n1", "i1") and not await one.claim_purge("n1", "i1")
