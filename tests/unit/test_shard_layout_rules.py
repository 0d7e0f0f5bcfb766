"""The routing of a change of the shard set (chat/adapters/shards/layout.py), pure."""

from __future__ import annotations

import pytest

from chat.adapters.shards.layout import PUBLISH, RECEIVE, Layout, Routing

OLD = {"s0": "redis://h:1", "s1": "redis://h:2", "s2": "redis://h:3"}
NEW = {**OLD, "s3": "redis://h:4"}
CHANNELS = [f"user:u{i}" for i in range(2000)]


def test_only_about_one_channel_in_n_moves_when_a_shard_is_added():
    before, after = Routing(Layout(0, OLD)), Routing(Layout(1, NEW))
    moved = [c for c in CHANNELS if before.publish_on(c) != after.publish_on(c)]
    assert 0.15 < len(moved) / len(CHANNELS) < 0.35  # ~1/4 with 4 shards
    assert all(after.publish_on(c) == "s3" for c in moved)  # only to the new shard


@pytest.mark.parametrize("phase", [RECEIVE, PUBLISH])
def test_a_moving_channel_is_received_on_both_owners_and_published_on_one(phase):
    before, after = Routing(Layout(0, OLD)), Routing(Layout(1, NEW))
    routing = Routing(Layout(1, NEW, OLD, phase))
    assert routing.changing
    for channel in CHANNELS[:200]:
        old, new = before.publish_on(channel), after.publish_on(channel)
        assert set(routing.receive_on(channel)) == {old, new}
        assert routing.publish_on(channel) == (old if phase == RECEIVE else new)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ((1, {}), "at least one shard"),
        ((1, NEW, OLD), "exactly while a change runs"),
        ((1, NEW, {}, RECEIVE), "exactly while a change runs"),
        ((1, NEW, OLD, "halfway"), "unknown phase"),
        ((1, {"s0": "redis://elsewhere:1"}, OLD, RECEIVE), "cannot change its URL"),
        ((1, OLD, {}, "steady", {"s0": 0}), "weight"),
    ],
)
def test_a_layout_that_cannot_be_routed_is_refused(args, why):
    with pytest.raises(ValueError, match=why):
        Layout(*args)


def test_a_heavier_shard_takes_its_share_of_the_channels():
    light = Routing(Layout(1, NEW))
    heavy = Routing(Layout(1, NEW, weights={"s3": 3}))
    share = [sum(r.publish_on(c) == "s3" for c in CHANNELS) / len(CHANNELS) for r in (light, heavy)]
    assert 0.15 < share[0] < 0.35 and 0.4 < share[1] < 0.6  # 1/4, then 3/6
    # Only towards the heavier shard: every other channel stays.
    assert all(heavy.publish_on(c) in ("s3", light.publish_on(c)) for c in CHANNELS)
