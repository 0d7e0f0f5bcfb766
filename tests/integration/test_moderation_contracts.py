"""One suite, two implementations: the contract of ``RoleStore`` (chat/ports.py), the room
settings and roles ``RoomStore`` keeps, and the moderator's delete of ``MessageChanges``, over
the in-memory fakes and over the Redis Cluster adapters, so that the fakes the unit tier relies
on cannot drift from the Lua scripts."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fakes import MemoryAccounts, MemoryChanges, MemoryHistory, MemoryModeration, MemoryRooms
from redis_fixtures import access

from chat import keys
from chat.adapters.cluster.accounts import ClusterAccounts
from chat.adapters.cluster.changes import ClusterChanges
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.history import ClusterHistory
from chat.adapters.cluster.moderation import ClusterModeration
from chat.adapters.cluster.rooms import ClusterRooms
from chat.adapters.cluster.roster import ClusterRoster
from chat.errors import ChatError
from chat.models import Message, UserRecord, UserRef
from chat.ports import ChangeRequest, ModerationRequest

ANN, BOB, CID, DAN = (UserRef(u, u.title()) for u in ("ann", "bob", "cid", "dan"))


@dataclass
class Stores:
    history: Any
    rooms: Any
    roles: Any
    changes: Any
    accounts: Any
    cluster: Cluster | None = None

    async def restrict(self, room_id: str, user_id: str, what: str, expiry: int) -> None:
        """Write a ban or mute as the store would have (an expired one, without waiting)."""
        if self.cluster is None:
            table = self.roles.bans if what == "ban" else self.roles.mutes
            table.setdefault(room_id, {})[user_id] = expiry
            return
        key = keys.room_bans_key(room_id) if what == "ban" else keys.room_mutes_key(room_id)
        await self.cluster.send(key, "HSET", key, user_id, expiry)

    async def make_admin(self, user_id: str) -> None:
        if self.cluster is None:
            self.roles.admins.add(user_id)
            return
        key = keys.service_admins_key()
        await self.cluster.send(key, "SADD", key, user_id)

    async def forget_roles(self, room_id: str) -> None:
        """As a room created before roles existed."""
        if self.cluster is None:
            self.rooms.roles.pop(room_id, None)
            return
        key = keys.room_roles_key(room_id)
        await self.cluster.send(key, "DEL", key)


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        accounts, history = MemoryAccounts(), MemoryHistory()
        rooms = MemoryRooms(accounts)
        mod = MemoryModeration(lambda: rooms, history)
        yield Stores(history, rooms, mod, MemoryChanges(history), accounts)
        return
    fleet = request.getfixturevalue("redis_clean")
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in fleet.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(fleet))
    await cluster.start(10)
    roster = ClusterRoster(cluster)
    rooms = ClusterRooms(cluster, roster, rooms_per_user=100, created_per_user=100)
    try:
        yield Stores(
            ClusterHistory(cluster), rooms, ClusterModeration(cluster), ClusterChanges(cluster),
            ClusterAccounts(cluster, roster), cluster,
        )  # fmt: skip
    finally:
        await cluster.stop()


async def club(stores: Stores, *members: UserRef, **kw: Any) -> str:
    room_id = "r" + secrets.token_hex(4)
    for user in (ANN, *members):
        record = UserRecord(user.id, f"{user.id}{room_id}@example.com", user.name)
        await stores.accounts.create(record, record.email, "hash")
    assert await stores.rooms.create(room_id, "Club", False, ANN.id, **kw) is not None
    for user in members:
        await stores.rooms.add_member(room_id, user.id)
    return room_id


async def act(stores: Stores, action: str, room_id: str, actor: UserRef, target: UserRef,
              **kw: Any) -> Message | None:  # fmt: skip
    req = ModerationRequest(action, room_id, actor, target, secrets.token_hex(4), **kw)
    return await stores.roles.moderate(req)


async def refused(stores: Stores, code: str, *args: Any, **kw: Any) -> None:
    room_id = args[1]
    before = (await stores.roles.roles([room_id]), await stores.history.last_seq(room_id))
    with pytest.raises(ChatError) as err:
        await act(stores, *args, **kw)
    assert err.value.code == code
    assert (await stores.roles.roles([room_id]), await stores.history.last_seq(room_id)) == before


async def roles(stores: Stores, room_id: str) -> dict[str, str]:
    return (await stores.roles.roles([room_id]))[room_id]


async def test_the_creator_is_owner_and_roles_list_owners_and_admins_only(stores):
    room_id = await club(stores, BOB)
    assert await roles(stores, room_id) == {"ann": "owner"}
    assert await stores.roles.roles(["nowhere"]) == {"nowhere": {}}
    entry = await act(stores, "role", room_id, ANN, BOB, role="admin")
    assert entry is not None and (entry.kind, entry.action, entry.role) == (
        "moderation",
        "role",
        "admin",
    )
    assert entry.user == BOB and entry.sender == ANN and entry.seq == 1
    assert await roles(stores, room_id) == {"ann": "owner", "bob": "admin"}
    assert await act(stores, "role", room_id, ANN, BOB, role="admin") is None
    await act(stores, "role", room_id, ANN, BOB, role="member")
    assert await roles(stores, room_id) == {"ann": "owner"}


async def test_refusals_change_nothing(stores):
    room_id = await club(stores, BOB, CID, DAN)
    await act(stores, "role", room_id, ANN, BOB, role="admin")
    await act(stores, "role", room_id, ANN, CID, role="admin")
    await refused(stores, "forbidden", "kick", room_id, DAN, BOB)  # a member
    await refused(stores, "forbidden", "kick", room_id, BOB, CID)  # an admin on an admin
    await refused(stores, "forbidden", "ban", room_id, BOB, ANN)  # on the owner
    await refused(stores, "forbidden", "mute", room_id, BOB, BOB, duration_ms=1000)  # self
    await refused(stores, "forbidden", "role", room_id, BOB, DAN, role="admin")  # not owner
    await refused(stores, "forbidden", "transfer", room_id, BOB, BOB)
    await refused(stores, "forbidden", "role", room_id, ANN, ANN, role="member")
    await refused(stores, "not_member", "kick", room_id, BOB, UserRef("eve", "Eve"))
    await refused(stores, "not_member", "transfer", room_id, ANN, UserRef("eve", "Eve"))


async def test_kick_ban_and_mute_record_what_they_do(stores):
    room_id = await club(stores, BOB, CID)
    await act(stores, "role", room_id, ANN, BOB, role="admin")
    kick = await act(stores, "kick", room_id, ANN, BOB)
    assert kick is not None and kick.action == "kick" and kick.until is None
    assert await roles(stores, room_id) == {"ann": "owner"}  # the admin's role went too
    ban = await act(stores, "ban", room_id, ANN, UserRef("eve", "Eve"))  # need not be a member
    assert ban is not None and ban.until is None
    assert await stores.roles.restricted(room_id, "eve", "ban") == 0
    mute = await act(stores, "mute", room_id, ANN, CID, duration_ms=60_000)
    assert mute is not None and mute.until == mute.ts + 60_000
    assert await stores.roles.restricted(room_id, "cid", "mute") == mute.until
    assert await stores.roles.restricted(room_id, "cid", "ban") is None
    assert await act(stores, "unban", room_id, ANN, CID) is None  # nothing to lift
    assert (await act(stores, "unmute", room_id, ANN, CID)).action == "unmute"
    assert await stores.roles.restricted(room_id, "cid", "mute") is None
    timed = await act(stores, "ban", room_id, ANN, CID, duration_ms=5_000)
    assert timed is not None and timed.until == timed.ts + 5_000
    await stores.restrict(room_id, "cid", "ban", timed.ts - 1)  # as if it had expired
    assert await stores.roles.restricted(room_id, "cid", "ban") is None
    assert await act(stores, "unban", room_id, ANN, CID) is None


async def test_entries_are_numbered_with_the_messages_and_read_back_in_their_place(stores):
    room_id = await club(stores, BOB)
    message, _ = await stores.history.append("m1", room_id, BOB, "hi", None, "t1")
    entry = await act(stores, "mute", room_id, ANN, BOB, duration_ms=1000)
    assert entry is not None and entry.seq == message.seq + 1
    assert entry.id.startswith(f"{entry.seq}.")
    page, _ = await stores.history.page(room_id, before=None, after=0, limit=10)
    assert page == [message, entry]
    req = ChangeRequest("react", room_id, entry.id, entry.seq, ANN, "x", "t2", emoji="👍")
    with pytest.raises(ChatError) as err:  # an entry is no message
        await stores.changes.change(req)
    assert err.value.code == "no_message"


@pytest.mark.parametrize("action", ["ban", "transfer", "role"])
async def test_a_request_run_again_answers_its_entry_and_appends_nothing(stores, action):
    """As when the cluster client sends a script again whose reply was lost."""
    room_id = await club(stores, BOB)
    role = "admin" if action == "role" else None
    req = ModerationRequest(action, room_id, ANN, BOB, secrets.token_hex(4), role=role)
    first = await stores.roles.moderate(req)
    assert first is not None and await stores.history.last_seq(room_id) == first.seq
    assert await stores.roles.moderate(req) == first
    assert await stores.history.last_seq(room_id) == first.seq


async def test_transfer_makes_the_old_owner_an_admin(stores):
    room_id = await club(stores, BOB)
    entry = await act(stores, "transfer", room_id, ANN, BOB)
    assert entry is not None and entry.action == "transfer"
    assert await roles(stores, room_id) == {"ann": "admin", "bob": "owner"}
    await refused(stores, "forbidden", "transfer", room_id, ANN, BOB)


async def test_a_room_without_roles_has_its_creator_as_owner_written_down_by_the_first_action(
    stores,
):
    room_id = await club(stores, BOB)
    await stores.forget_roles(room_id)
    assert await roles(stores, room_id) == {}
    await refused(stores, "forbidden", "kick", room_id, BOB, ANN)
    assert await roles(stores, room_id) == {}
    await act(stores, "role", room_id, ANN, BOB, role="admin")
    assert await roles(stores, room_id) == {"ann": "owner", "bob": "admin"}


async def test_a_service_admin_acts_as_an_owner(stores):
    room_id = await club(stores, BOB)
    await refused(stores, "forbidden", "kick", room_id, CID, BOB)
    await stores.make_admin("cid")
    assert await stores.roles.service_admin("cid") and not await stores.roles.service_admin("bob")
    assert await act(stores, "kick", room_id, CID, BOB, service_admin=True) is not None
    await refused(stores, "forbidden", "ban", room_id, CID, ANN, service_admin=True)


async def test_settings_counts_and_a_leaving_member_loses_the_role(stores):
    room_id = await club(stores, BOB, member_limit=5)
    room = await stores.rooms.get(room_id)
    assert (room.managed, room.member_limit, room.private) == (False, 5, False)
    assert await stores.rooms.member_count(room_id) == 2
    await stores.rooms.set_settings(room_id, True, None)
    room = await stores.rooms.get(room_id)
    assert (room.managed, room.member_limit, room.private) == (True, 5, True)
    assert room_id not in await stores.rooms.public_rooms()
    await stores.rooms.set_settings(room_id, None, 7)
    assert (await stores.rooms.get(room_id)).member_limit == 7
    await act(stores, "role", room_id, ANN, BOB, role="admin")
    assert await stores.rooms.remove_member(room_id, BOB.id)
    assert await roles(stores, room_id) == {"ann": "owner"}
    assert await stores.rooms.member_count(room_id) == 1
    managed = "m" + secrets.token_hex(4)
    made = await stores.rooms.create(managed, "M", False, ANN.id, managed=True)
    assert made.private and made.managed and (await stores.rooms.get(managed)).private


async def test_a_moderator_deletes_any_message_and_the_entry_says_so(stores):
    room_id = await club(stores, BOB)
    message, _ = await stores.history.append("m1", room_id, BOB, "spam", None, "t1")
    req = ChangeRequest("delete", room_id, message.id, message.seq, ANN, "x", "t2")
    with pytest.raises(ChatError) as err:
        await stores.changes.change(req)
    assert err.value.code == "forbidden"
    entry, _ = await stores.changes.change(
        ChangeRequest("delete", room_id, message.id, message.seq, ANN, "y", "t3", moderator=True)
    )
    assert entry is not None and entry.by_moderator is True and entry.kind == "delete"
    own, _ = await stores.history.append("m2", room_id, ANN, "mine", None, "t4")
    entry, _ = await stores.changes.change(
        ChangeRequest("delete", room_id, own.id, own.seq, ANN, "z", "t5", moderator=True)
    )
    assert entry is not None and entry.by_moderator is False
