"""Who may do what: one table of documented answers, checked on two real nodes.

Every Socket.IO event and REST route that names a room or a user has its rows here, for every
room kind and every relation of the caller to it; an event or route without rows fails
``test_every_event_and_route_has_rows``.  Rooms cannot be deleted (yet), so "deleted" is the
same as "unknown": a well-formed id that names nothing; a deleted account answers as an unknown
user does (e2e/test_people.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from sioclient import Client
from stack import Stack, User, new_user_id, register
from test_accounts import call

from chat import keys
from chat.adapters.rest import Rest
from chat.core.events import ClientEvents
from chat.models import dm_room_id

OK = "ok"
FORBIDDEN = "forbidden"
NO_ROOM = "no_room"
NO_USER = "no_user"
NO_MESSAGE = "no_message"
NOT_MEMBER = "not_member"
OWNER_MUST_TRANSFER = "owner_must_transfer"
INVALID = "invalid_request"

# --- the table ---------------------------------------------------------------------------------
# Room kinds and the caller's relations to a room of that kind:
#   member: created it (the lobby: everyone); invited: added by a member; former: was a member
#   and left; outsider: never a member.  DMs: party / other_party (the two users), third (anyone
#   else).  ghost_dm: dm:<caller>:<id of nobody>.  unknown: a well-formed id naming no room;
#   malformed: an id no room can have.
CELLS = [
    ("lobby", "member"),
    *(("public", rel) for rel in ("member", "invited", "former", "outsider")),
    *(("private", rel) for rel in ("member", "invited", "former", "outsider")),
    ("dm", "party"),
    ("dm", "other_party"),
    ("dm", "third"),
    ("ghost_dm", "party"),
    ("unknown", "anyone"),
    ("malformed", "anyone"),
]


def _answers(lobby: str, public: dict[str, str], private: dict[str, str], dm: dict[str, str]):
    rows = {("lobby", "member"): lobby}
    rows.update({("public", rel): code for rel, code in public.items()})
    rows.update({("private", rel): code for rel, code in private.items()})
    rows.update({("dm", rel): code for rel, code in dm.items()})
    rows.update({("ghost_dm", "party"): NO_ROOM, ("unknown", "anyone"): NO_ROOM})
    rows[("malformed", "anyone")] = NO_ROOM
    return rows


MEMBERS_ONLY = {"member": OK, "invited": OK, "former": FORBIDDEN, "outsider": FORBIDDEN}
ANYONE = {"member": OK, "invited": OK, "former": OK, "outsider": OK}
PARTIES = {"party": OK, "other_party": OK, "third": FORBIDDEN}
NOBODY = {"party": FORBIDDEN, "other_party": FORBIDDEN, "third": FORBIDDEN}

#: Read a room: public rooms are readable by every signed-in user, others by members.
READ = _answers(OK, ANYONE, MEMBERS_ONLY, PARTIES)
#: Write to a room (send, typing) or recover it (sync): members only.
WRITE = _answers(OK, MEMBERS_ONLY, MEMBERS_ONLY, PARTIES)
#: join: public rooms by anyone, private ones by members, a DM by its two users.
JOIN = _answers(OK, ANYONE, MEMBERS_ONLY, PARTIES)
#: leave: the lobby and DMs cannot be left; leaving a room one is not in changes nothing; the
#: owner (the member who created it) must transfer it first (issue 17).
OWNER_STAYS = {**ANYONE, "member": OWNER_MUST_TRANSFER}
LEAVE = _answers(FORBIDDEN, OWNER_STAYS, OWNER_STAYS, NOBODY)
#: invite someone: members of a room; nobody into the lobby or a DM.
INVITE = _answers(FORBIDDEN, MEMBERS_ONLY, MEMBERS_ONLY, NOBODY)
#: Change a message (edit, delete, react) of an id that names none (MESSAGE_ID): members only,
#: and only members learn that the message does not exist (a non-member is refused first).
MEMBERS_FIND_NOTHING = {"member": NO_MESSAGE, "invited": NO_MESSAGE, "former": FORBIDDEN,
                        "outsider": FORBIDDEN}  # fmt: skip
CHANGE = _answers(
    NO_MESSAGE, MEMBERS_FIND_NOTHING, MEMBERS_FIND_NOTHING,
    {"party": NO_MESSAGE, "other_party": NO_MESSAGE, "third": FORBIDDEN},
)  # fmt: skip
MESSAGE_ID = "1.matrix"
#: Moderation and roles (issue 17), aimed at ``guest`` (never a member): the owner passes the
#: role checks (then a kick, mute, role or transfer needs a member; a ban, unban, unmute and
#: the settings do not), every other caller is refused; the lobby and DMs have no moderation.
ONLY_THE_OWNER = {"member": OK, "invited": FORBIDDEN, "former": FORBIDDEN,
                  "outsider": FORBIDDEN}  # fmt: skip
OWNER_FINDS_NO_MEMBER = {**ONLY_THE_OWNER, "member": NOT_MEMBER}
MODERATE = _answers(FORBIDDEN, ONLY_THE_OWNER, ONLY_THE_OWNER, NOBODY)
MODERATE_MEMBER = _answers(FORBIDDEN, OWNER_FINDS_NO_MEMBER, OWNER_FINDS_NO_MEMBER, NOBODY)
#: Each moderation event's extra payload, and whether it needs a member.
MODERATION = {
    "kick": ({}, MODERATE_MEMBER),
    "ban": ({"duration_s": 60}, MODERATE),
    "unban": ({}, MODERATE),
    "mute": ({"duration_s": 60}, MODERATE_MEMBER),
    "unmute": ({}, MODERATE),
    "role": ({"role": "admin"}, MODERATE_MEMBER),
    "transfer": ({}, MODERATE_MEMBER),
}

ROOM_EVENTS: dict[str, dict[tuple[str, str], str]] = {
    "join": JOIN,
    "leave": LEAVE,
    "invite": INVITE,
    "send": WRITE,
    "history": READ,
    "sync": WRITE,
    "members": READ,
    "typing": WRITE,
    "read": WRITE,
    "edit": CHANGE,
    "delete": CHANGE,
    "react": CHANGE,
    **{event: table for event, (_, table) in MODERATION.items()},
    "room_settings": MODERATE,
}
ROOM_ROUTES: dict[tuple[str, str], dict[tuple[str, str], str]] = {
    ("GET", "/api/rooms/{id}/messages"): READ,
    ("POST", "/api/rooms/{id}/messages"): WRITE,
    ("POST", "/api/rooms/{id}/read"): WRITE,
    ("PATCH", "/api/rooms/{id}/messages/{message}"): CHANGE,
    ("DELETE", "/api/rooms/{id}/messages/{message}"): CHANGE,
    ("POST", "/api/rooms/{id}/messages/{message}/reactions"): CHANGE,
    **{("POST", f"/api/rooms/{{id}}/{event}"): table for event, (_, table) in MODERATION.items()},
    ("PATCH", "/api/rooms/{id}"): MODERATE,
}

# Events and routes that name a user: the caller themselves, another user, nobody.
USER_TARGETS = ("self", "other", "unknown")
USER_EVENTS: dict[str, dict[str, str]] = {
    "dm": {"self": OK, "other": OK, "unknown": NO_USER},
    # into a private room of the caller's
    "invite": {"self": OK, "other": OK, "unknown": NO_USER},
    # presence is public: an unknown id is simply offline
    "online": {"self": OK, "other": OK, "unknown": OK},
    "watch": {"self": OK, "other": OK, "unknown": OK},
    "unwatch": {"self": OK, "other": OK, "unknown": OK},
    # the owner of a private room acts on: nobody acts on themselves; a ban needs no member
    "kick": {"self": FORBIDDEN, "other": NOT_MEMBER, "unknown": NO_USER},
    "ban": {"self": FORBIDDEN, "other": OK, "unknown": NO_USER},
    # nobody blocks themselves; unblocking whoever is not blocked changes nothing
    "block": {"self": INVALID, "other": OK, "unknown": NO_USER},
    "unblock": {"self": OK, "other": OK, "unknown": OK},
}
USER_ROUTES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/api/users/{id}"): {"self": OK, "other": OK, "unknown": NO_USER},
    ("PUT", "/api/me/blocks/{id}"): {"self": INVALID, "other": OK, "unknown": NO_USER},
    ("DELETE", "/api/me/blocks/{id}"): {"self": OK, "other": OK, "unknown": OK},
}

#: Events and routes that name no room, message or other user: they act on the caller's own
#: account (or the lobby, for the compatibility routes) and need no rows.
NAMES_NOTHING = {
    "rename",
    "settings",
    "blocks",
    "users",  # a search: names a prefix, never a user
    ("GET", "/api/me/blocks"),
    ("GET", "/api/users"),
    ("DELETE", "/api/me"),
    ("GET", "/api/me/settings"),
    ("PATCH", "/api/me/settings"),
    ("POST", "/api/register"),
    ("POST", "/api/login"),
    ("POST", "/api/logout"),
    ("POST", "/api/refresh"),
    ("GET", "/api/me"),
    ("PATCH", "/api/me"),
    ("GET", "/api/rooms"),
    ("POST", "/api/rooms"),
    ("POST", "/user/"),
    ("PUT", "/user/"),
    ("POST", "/message/"),
    ("GET", "/message/"),
}


def _socket_events() -> set[str]:
    return set(ClientEvents.events(ClientEvents.__new__(ClientEvents)))


def _rest_routes() -> set[tuple[str, str]]:
    return {(route.method, route.path) for route in Rest.routes(Rest.__new__(Rest))}


def test_every_event_and_route_has_rows():
    for table in (*ROOM_EVENTS.values(), *ROOM_ROUTES.values()):
        assert set(table) == set(CELLS)
    for user_table in (*USER_EVENTS.values(), *USER_ROUTES.values()):
        assert set(user_table) == set(USER_TARGETS)
    covered = {*ROOM_EVENTS, *ROOM_ROUTES, *USER_EVENTS, *USER_ROUTES, *NAMES_NOTHING}
    assert _socket_events() - covered == set(), "a new event needs its rows in this table"
    assert _rest_routes() - covered == set(), "a new route needs its rows in this table"
    assert covered - _socket_events() - _rest_routes() == set(), "rows for nothing"


# --- running it --------------------------------------------------------------------------------


@dataclass
class Person:
    user: User
    client: Client


@dataclass
class World:
    stack: Stack
    people: dict[str, Person]  # alice, bob, carol, dave, erin, guest
    ghost: str  # a user id that names nobody

    def caller(self, kind: str, relation: str) -> Person:
        by_relation = {
            "member": "alice", "invited": "bob", "former": "carol", "outsider": "dave",
            "party": "alice", "other_party": "erin", "third": "dave", "anyone": "dave",
        }  # fmt: skip
        return self.people[by_relation[relation]]


async def _ack(person: Person, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    ack = await person.client.call(event, payload)
    assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), ack
    return ack


def _wrong(got: dict[Any, str], expected: dict[Any, str]) -> dict[Any, str]:
    """The cells that differ, as ``{cell: "got X, documented Y"}`` (readable failures)."""
    cells = {*got, *expected}
    return {
        c: f"got {got.get(c)}, documented {expected.get(c)}"
        for c in cells
        if got.get(c) != expected.get(c)
    }


def _code(ack: dict[str, Any]) -> str:
    return OK if ack["ok"] else ack["error"]["code"]


async def _room(world: World, kind: str) -> str:
    """A room of the kind with every relation in place (rooms: a fresh one per call)."""
    alice, bob, carol, erin = (world.people[n] for n in ("alice", "bob", "carol", "erin"))
    if kind == "lobby":
        return "lobby"
    if kind == "dm":
        return dm_room_id(alice.user.id, erin.user.id)
    if kind == "ghost_dm":
        return dm_room_id(alice.user.id, world.ghost)
    if kind == "unknown":
        return f"r{secrets.token_hex(6)}"
    if kind == "malformed":
        return "Not A Room!"
    rid = f"r{secrets.token_hex(6)}"
    status, body, _ = await call(
        "POST", world.stack.url(0) + "/api/rooms",
        {"id": rid, "private": kind == "private"}, alice.user.token,
    )  # fmt: skip
    assert status == 201, body
    for person in (bob, carol):
        assert (await _ack(alice, "invite", {"room": rid, "user": person.user.id}))["ok"]
    assert (await _ack(carol, "leave", {"room": rid}))["ok"]
    return rid


CHANGE_FIELDS = {"edit": {"room", "id", "text"}, "delete": {"room", "id"},
                 "react": {"room", "id", "emoji", "on"}}  # fmt: skip


async def _room_event(world: World, person: Person, event: str, room: str) -> str:
    payload: dict[str, Any] = {"room": room}
    if event == "send":
        payload["text"] = "matrix"
    elif event == "invite":
        payload["user"] = world.people["guest"].user.id
    elif event == "sync":
        payload = {"rooms": {room: 0}}
    elif event == "read":
        payload["seq"] = 0
    elif event in MODERATION:
        payload = {**payload, "user": world.people["guest"].user.id, **MODERATION[event][0]}
    elif event == "room_settings":
        payload["member_limit"] = 50
    elif event in ("edit", "delete", "react"):
        payload = {**payload, "id": MESSAGE_ID, "text": "matrix", "emoji": "👍", "on": True}
        payload = {k: v for k, v in payload.items() if k in CHANGE_FIELDS[event]}
    ack = await _ack(person, event, payload)
    if event == "sync" and ack["ok"]:
        entry = ack["rooms"][room]
        return entry["error"]["code"] if "error" in entry else OK
    return _code(ack)


async def _route(world: World, person: Person, method: str, path: str, ident: str) -> str:
    url = world.stack.url(1) + path.replace("{id}", quote(ident, safe=""))
    url = url.replace("{message}", MESSAGE_ID)
    body: dict[str, Any] | None = {"text": "matrix"} if method in ("POST", "PATCH") else None
    if path.endswith("/reactions"):
        body = {"emoji": "👍", "on": True}
    if path.endswith("/read"):
        body = {"seq": 0}
    event = path.rsplit("/", 1)[-1]
    if event in MODERATION:
        body = {"user": world.people["guest"].user.id, **MODERATION[event][0]}
    elif method == "PATCH" and path == "/api/rooms/{id}":
        body = {"member_limit": 50}
    status, answer, _ = await call(method, url, body, person.user.token)
    return OK if status < 300 else answer["error"]["code"]


@pytest.fixture
async def world(stack: Stack):
    people = {}
    for i, name in enumerate(("alice", "bob", "carol", "dave", "erin", "guest")):
        user = await register(stack.url(i % 2), name)
        client = await Client().connect(stack.url(i % 2), user.token)
        await client.next("session")
        people[name] = Person(user, client)
    try:
        yield World(stack, people, ghost=new_user_id("ghost"))
    finally:
        for person in people.values():
            await person.client.close()


@pytest.mark.parametrize("event", sorted(ROOM_EVENTS))
async def test_room_events_answer_as_documented(world: World, event: str):
    expected = ROOM_EVENTS[event]
    got = {}
    for kind in dict.fromkeys(kind for kind, _ in CELLS):
        room = await _room(world, kind)  # one room per event and kind: relations don't mix
        for cell in (c for c in CELLS if c[0] == kind):
            got[cell] = await _room_event(world, world.caller(*cell), event, room)
    assert _wrong(got, expected) == {}


@pytest.mark.parametrize("route", sorted(ROOM_ROUTES))
async def test_room_routes_answer_as_documented(world: World, route: tuple[str, str]):
    got = {}
    for kind in dict.fromkeys(kind for kind, _ in CELLS):
        room = await _room(world, kind)
        for cell in (c for c in CELLS if c[0] == kind):
            got[cell] = await _route(world, world.caller(*cell), *route, room)
    assert _wrong(got, ROOM_ROUTES[route]) == {}


def _target(world: World, target: str) -> str:
    alice = world.people["alice"].user.id
    return {"self": alice, "other": world.people["dave"].user.id, "unknown": world.ghost}[target]


async def test_user_events_and_routes_answer_as_documented(world: World):
    alice = world.people["alice"]
    got: dict[Any, dict[str, str]] = {}
    for event in USER_EVENTS:
        for target in USER_TARGETS:
            user = _target(world, target)
            if event == "dm":
                payload: dict[str, Any] = {"to": user, "text": "matrix"}
            elif event in ("invite", "kick", "ban"):
                payload = {"room": await _room(world, "private"), "user": user}
            elif event in ("block", "unblock"):
                payload = {"user": user}
            else:
                payload = {"users": [user]}
            got.setdefault(event, {})[target] = _code(await _ack(alice, event, payload))
    for route in USER_ROUTES:
        for target in USER_TARGETS:
            got.setdefault(route, {})[target] = await _route(
                world, alice, *route, _target(world, target)
            )
    flat = {(name, t): code for name, row in got.items() for t, code in row.items()}
    documented = {**USER_EVENTS, **USER_ROUTES}
    assert _wrong(flat, {(n, t): c for n, row in documented.items() for t, c in row.items()}) == {}


# --- the attacks this table was written for -------------------------------------------------------


async def test_a_third_user_cannot_take_over_a_dm_by_joining_it(world: World):
    """The takeover: join someone else's DM, then use it as if a member (the refused join must
    leave nothing behind that a later check trusts)."""
    alice, erin, dave = (world.people[n] for n in ("alice", "erin", "dave"))
    room = dm_room_id(alice.user.id, erin.user.id)
    assert (await _ack(alice, "dm", {"to": erin.user.id, "text": "private"}))["ok"]
    assert _code(await _ack(dave, "join", {"room": room})) == FORBIDDEN
    for event in ("history", "members", "typing", "send", "sync"):
        assert await _room_event(world, dave, event, room) == FORBIDDEN, event
    for route in ROOM_ROUTES:
        assert await _route(world, dave, *route, room) == FORBIDDEN
    status, body, _ = await call("GET", world.stack.url(0) + "/api/rooms", None, dave.user.token)
    assert status == 200
    assert room not in {r["id"] for r in body["rooms"]}
    assert [m for m in dave.client.pending("message") if m["room"] == room] == []


async def test_a_dm_with_nobody_stores_nothing(world: World):
    alice = world.people["alice"]
    room = dm_room_id(alice.user.id, world.ghost)
    for event in ("join", "send", "history", "typing"):
        assert await _room_event(world, alice, event, room) == NO_ROOM, event
    assert _code(await _ack(alice, "dm", {"to": world.ghost, "text": "hello?"})) == NO_USER
    fleet = world.stack.fleet
    for key in (keys.room_seq_key(room), keys.room_log_key(room)):
        assert fleet.master_for_key(key).command("EXISTS", key) == 0
    mine = keys.user_rooms_key(alice.user.id)
    assert fleet.master_for_key(mine).command("SISMEMBER", mine, room) == 0


@pytest.mark.parametrize("first_call", ["history", "join", "members"])
async def test_a_dm_is_listed_for_both_users_by_its_first_message_whatever_came_before(
    world: World, first_call: str
):
    """A new user opens a DM from the members list: the client reads the (empty) history
    first, then sends.  Both users must find the DM in their room lists afterwards."""
    alice, erin = world.people["alice"], world.people["erin"]
    room = dm_room_id(alice.user.id, erin.user.id)
    assert (await _ack(alice, first_call, {"room": room}))["ok"]
    assert (await _ack(alice, "send", {"room": room, "text": "first"}))["ok"]
    for person, node in ((alice, 1), (erin, 0)):
        status, body, _ = await call(
            "GET", world.stack.url(node) + "/api/rooms", None, person.user.token
        )
        assert status == 200
        assert room in {r["id"] for r in body["rooms"]}
        client = await Client().connect(world.stack.url(node), person.user.token)
        try:
            session = await client.next("session")
            assert room in {r["id"] for r in session["rooms"]}
        finally:
            await client.close()


@pytest.mark.parametrize("private", [False, True])
async def test_an_existing_room_cannot_be_created_again_the_lobby_included(
    world: World, private: bool
):
    alice, dave = world.people["alice"], world.people["dave"]
    taken = await _room(world, "private")
    for rid in ("lobby", taken):
        status, body, _ = await call(
            "POST", world.stack.url(1) + "/api/rooms", {"id": rid, "private": private},
            dave.user.token,
        )  # fmt: skip
        assert (status, body["error"]["code"]) == (409, "room_exists")
    # nothing changed: the lobby is still public and dave is still outside the private room
    assert await _room_event(world, dave, "history", "lobby") == OK
    assert await _room_event(world, dave, "history", taken) == FORBIDDEN
    status, body, _ = await call("GET", world.stack.url(0) + "/api/rooms", None, alice.user.token)
    lobby = next(r for r in body["rooms"] if r["id"] == "lobby")
    assert lobby["private"] is False
