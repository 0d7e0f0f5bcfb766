"""The shard set's admin and follower (chat/core/shardset.py) over the fakes: what a change
refuses, and how it walks every live node through receive, publish, steady."""

from __future__ import annotations

import logging

import pytest
from fakes import MemoryPresence, MemoryShardSet, MemorySwitch, PresenceState

from chat.core.shardset import Admin, Follower, NotAcknowledged, Refused
from chat.models import PUBLISH, RECEIVE, STEADY, Layout

A, B, C = "redis://a:6379", "redis://b:6379", "redis://c:6379"
UP = {A, B, C}


async def probe(url: str) -> bool:
    return url in UP


class Fleet:
    """One shard set record, nodes with leases, and their followers."""

    def __init__(self) -> None:
        self.store, self.leases = MemoryShardSet(), PresenceState()
        self.switches: dict[str, MemorySwitch] = {}
        self.followers: dict[str, Follower] = {}
        self.admin = Admin(
            self.store, MemoryPresence(self.leases, "admin").live_nodes, probe, wait=2.0,
            poll=0.002,
        )  # fmt: skip

    async def node(self, name: str, shards: dict[str, str], *, follow: bool = True) -> Follower:
        switch = self.switches[name] = MemorySwitch(Layout(0, shards))
        follower = self.followers[name] = Follower(self.store, switch, name, shards, every=0.002)
        await follower.prepare()
        await MemoryPresence(self.leases, name).renew("i1", 30_000)
        if follow:
            await follower.start()
        return follower

    async def stop(self) -> None:
        for follower in self.followers.values():
            await follower.stop()


@pytest.fixture
async def fleet():
    fleet = Fleet()
    await fleet.node("n1", {"a": A, "b": B})
    await fleet.node("n2", {"a": A, "b": B})
    yield fleet
    await fleet.stop()


def steps(switch: MemorySwitch) -> list[tuple[int, str]]:
    return [layout.step for layout in switch.applied]


async def test_the_first_node_records_chat_shards_and_later_ones_take_the_record(caplog):
    fleet = Fleet()
    await fleet.node("n1", {"a": A})
    with caplog.at_level(logging.WARNING):
        await fleet.node("n2", {"a": A, "b": B}, follow=False)  # a stale CHAT_SHARDS
    assert await fleet.store.read() == Layout(1, {"a": A})
    assert fleet.switches["n2"].layout == Layout(1, {"a": A})
    assert "the record wins" in caplog.text
    await fleet.stop()


async def test_an_added_shard_walks_every_node_through_the_three_steps(fleet):
    done = await fleet.admin.add("c", C)
    assert done == Layout(2, {"a": A, "b": B, "c": C})
    for switch in fleet.switches.values():
        assert steps(switch) == [(2, RECEIVE), (2, PUBLISH), (2, STEADY)]
        assert switch.applied[0].previous == {"a": A, "b": B}
    assert await fleet.store.acks() == {"n1": (2, STEADY), "n2": (2, STEADY)}


async def test_a_removed_shard_walks_the_same_steps(fleet):
    assert await fleet.admin.remove("a") == Layout(2, {"b": B})
    assert steps(fleet.switches["n1"]) == [(2, RECEIVE), (2, PUBLISH), (2, STEADY)]


@pytest.mark.parametrize(
    ("name", "url", "why"),
    [
        ("bad name!", C, "not a shard name"),
        ("c", "http://c:6379", "not a redis:// or rediss:// URL"),
        ("c", "redis://user:secret@c:6379", "credentials"),
        ("c", "redis://c:6379?password=x", r"no \?options"),
        ("a", C, "exists already"),
        ("c", A, "is shard 'a' already"),
        ("c", "redis://down:6379", "does not answer PING"),
    ],
)
async def test_a_bad_add_is_refused_and_changes_nothing(fleet, name, url, why):
    before = fleet.store.record
    with pytest.raises(Refused, match=why) as refused:
        await fleet.admin.add(name, url)
    assert "secret" not in str(refused.value)
    assert fleet.store.record == before


async def test_a_bad_remove_is_refused_and_changes_nothing(fleet):
    before = fleet.store.record
    with pytest.raises(Refused, match="no shard 'z'"):
        await fleet.admin.remove("z")
    await fleet.admin.remove("a")
    last = fleet.store.record
    with pytest.raises(Refused, match="last shard"):
        await fleet.admin.remove("b")
    assert fleet.store.record == last != before


async def test_a_node_that_does_not_follow_stops_the_change_where_it_is_until_resumed(fleet):
    await fleet.node("n3", {"a": A, "b": B}, follow=False)
    fleet.admin.wait = 0.05
    with pytest.raises(NotAcknowledged, match="nodes n3 did not reach epoch 2 phase receive"):
        await fleet.admin.add("c", C)
    assert (await fleet.store.read()).step == (2, RECEIVE)
    with pytest.raises(Refused, match=r"epoch 2, phase receive.*chat shards resume"):
        await fleet.admin.remove("a")
    await fleet.followers["n3"].start()
    fleet.admin.wait = 2.0
    assert (await fleet.admin.resume()).step == (2, STEADY)
    assert steps(fleet.switches["n3"]) == [(2, RECEIVE), (2, PUBLISH), (2, STEADY)]


async def test_a_dead_node_stops_counting_when_its_lease_lapses(fleet):
    await fleet.node("n3", {"a": A, "b": B}, follow=False)  # never acknowledges anything
    fleet.leases.clock.advance(31)  # every lease lapses...
    for name in ("n1", "n2"):  # ...but the followers' nodes renew theirs
        await MemoryPresence(fleet.leases, name).renew("i1", 30_000)
    assert (await fleet.admin.add("c", C)).step == (2, STEADY)


async def test_a_finished_change_forgets_the_acknowledgements_of_gone_nodes(fleet):
    gone = await fleet.node("n3", {"a": A, "b": B})
    await gone.stop()  # it acknowledged epoch 1, then died
    fleet.leases.clock.advance(31)
    for name in ("n1", "n2"):
        await MemoryPresence(fleet.leases, name).renew("i1", 30_000)
    assert "n3" in await fleet.store.acks()
    await fleet.admin.add("c", C)
    assert set(await fleet.store.acks()) == {"n1", "n2"}


async def test_a_step_the_broker_could_not_confirm_is_tried_again_and_acked_only_then(fleet):
    switch, follower = fleet.switches["n1"], fleet.followers["n1"]
    await follower.stop()
    switch.refuse = 1
    await fleet.store.write(Layout(2, {"a": A}, {"a": A, "b": B}, RECEIVE), (1, STEADY))
    await follower.follow()
    assert switch.layout.step == (1, STEADY)
    assert (await fleet.store.acks())["n1"] == (1, STEADY)
    await follower.follow()
    assert (await fleet.store.acks())["n1"] == (2, RECEIVE)


async def test_two_changes_cannot_both_start(fleet):
    current = await fleet.store.read()
    assert await fleet.store.write(Layout(2, {"a": A}, dict(current.shards), RECEIVE), (1, STEADY))
    assert not await fleet.store.write(
        Layout(2, {"b": B}, dict(current.shards), RECEIVE), (1, STEADY)
    )


async def test_a_node_that_starts_during_a_change_starts_on_its_current_step(fleet):
    current = await fleet.store.read()
    receive = Layout(2, {"a": A}, dict(current.shards), RECEIVE)
    assert await fleet.store.write(receive, current.step)
    late = await fleet.node("n3", {"a": A, "b": B}, follow=False)
    assert fleet.switches["n3"].layout == receive
    await late.start()
    assert (await fleet.store.acks())["n3"] == (2, RECEIVE)


async def test_a_weight_is_carried_through_the_change_and_dropped_with_its_shard(fleet):
    with pytest.raises(Refused, match=r"1\.\.100"):
        await fleet.admin.add("c", C, weight=101)
    assert (await fleet.admin.add("c", C, weight=3)).weights == {"c": 3}
    assert all(layout.weights == {"c": 3} for layout in fleet.switches["n1"].applied)
    removing = await fleet.admin.remove("c")
    assert removing.weights == {}
    assert fleet.switches["n2"].applied[-2].weights == {"c": 3}  # the old ring, while publishing


def test_the_record_round_trips_with_its_weights():
    layout = Layout(4, {"a": A, "c": C}, {"a": A}, PUBLISH, {"c": 3})
    assert Layout.decode(layout.encode()) == layout
    assert Layout.decode(b'{"epoch":1,"phase":"steady","shards":{"a":"redis://a"}}').weights == {}
