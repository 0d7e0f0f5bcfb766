"""The small interfaces the use-case layer depends on.

Adapters (Redis, Socket.IO) implement them; ``chat/app.py`` wires concrete classes in.  Tests
of the logic above them use the in-memory implementations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chat.models import (
    Account,
    Layout,
    Message,
    Room,
    RoomCounts,
    ServiceToken,
    UserRecord,
    UserRef,
)

#: Called by a broker for every payload received on a subscribed channel, in arrival order
#: per shard.  It is awaited before the next payload of that shard is read, which gives
#: per-channel FIFO delivery; it must be quick and must not raise.
MessageHandler = Callable[[str, bytes], Awaitable[None]]
#: Called with the channels of a shard whose connection was replaced, once resubscribed.
Resubscribed = Callable[[Collection[str]], Awaitable[None]]


class Broker(Protocol):
    """Cross-node pub/sub with per-node reference counting of channel subscriptions."""

    async def subscribe(self, channels: Collection[str]) -> list[str]:
        """Count one more local interest in each channel; return once each is subscribed,
        with the channels this node did not follow before."""

    async def unsubscribe(self, channels: Collection[str]) -> list[str]:
        """Drop one local interest; return the channels whose last interest this was."""

    async def publish(self, channel: str, payload: bytes) -> None:
        """Send ``payload`` to every node subscribed to ``channel``.  Bounded: it fails within
        about a second when the channel's shard does not answer, and at once while that shard
        is known to be failing, so a caller is never held by a sick shard (a stored message
        is then recovered by its receivers from history, see ``on_resubscribed``)."""

    async def publish_each(
        self, channels: Collection[str], payload: bytes
    ) -> list[BaseException | None]:
        """``publish`` to several channels at once; never raises: per channel, in order,
        None or the error of its publish."""

    def is_ready(self) -> bool:
        """True while every shard is connected and every wanted channel is subscribed."""

    def on_resubscribed(self, callback: Resubscribed) -> None:
        """Run ``callback(channels)`` (in a task) whenever the connection of a shard was
        replaced and ``channels`` are subscribed again: whatever was published on them in
        between never reached this node."""


class LocalDelivery(Protocol):
    """Delivery to the sockets connected to *this* node (the Socket.IO adapter).

    Local rooms are named like the channels they mirror (``user:<id>``, ``room:<id>``), plus
    ``jti:<token id>`` for the sockets of one token.
    """

    async def emit(
        self, local_room: str, event: str, data: Any, skip_user: str | None = None
    ) -> None: ...

    async def emit_raw(
        self, local_room: str, event: str, raw: bytes, skip_user: str | None = None
    ) -> None:
        """``emit`` with a payload that is JSON text already (forwarded as it arrived)."""

    async def emit_to(self, sid: str, event: str, data: Any) -> None: ...

    def sids(self, local_room: str) -> list[str]:
        """The sockets of this node in a local room."""

    def enter(self, sid: str, local_room: str) -> None: ...

    def leave(self, sid: str, local_room: str) -> None: ...

    async def disconnect(self, local_room: str, reason: str) -> None: ...


class History(Protocol):
    """Durable, ordered message log per room."""

    async def append(
        self,
        message_id: str,
        room: str,
        sender: UserRef,
        text: str,
        cid: str | None,
        token: str,
        *,
        mentions: Sequence[str] = (),
        names: Sequence[str] = (),
    ) -> tuple[Message, bool]:
        """Store with the room's next seq, under the id ``"<seq>.<message_id>"``; a repeated
        ``token`` returns the first result (and False).  The message mentions the room's
        members among ``mentions`` (user ids) and those whose lowercased name is one of
        ``names`` (DMs: no roster, ``mentions`` only), never the sender; it counts for unread
        (``ReadStore``).  A DM whose gate is closed (``PeopleStore``: a block between the two,
        a deleted account) is refused in the same step, retries included: ``forbidden`` for a
        block, ``no_user`` for a deletion; nothing is stored."""

    async def last_seq(self, room: str) -> int: ...

    async def last_seqs(self, rooms: Collection[str]) -> dict[str, int]: ...

    async def page(
        self,
        room: str,
        *,
        before: int | None,
        after: int | None,
        limit: int,
        viewer: str | None = None,
    ) -> tuple[list[Message], bool]:
        """Entries (messages and changes) ascending by seq, plain messages in their current
        state (``models.with_state``), ``my_reactions`` those of ``viewer``."""

    async def between(
        self, room: str, after: int, upto: int, limit: int, viewer: str | None = None
    ) -> list[Message]: ...


@dataclass(frozen=True)
class ChangeRequest:
    """One change of a message, as the use case hands it to ``MessageChanges.change``."""

    kind: str  # "edit" | "delete" | "react"
    room: str
    target: str  # the message id
    target_seq: int
    sender: UserRef
    random: str  # the new entry's id is "<seq>.<random>"
    token: str  # idempotency (the cid, or a server-made one)
    cid: str | None = None
    text: str | None = None  # edit
    emoji: str | None = None  # react
    on: bool = True  # react
    edit_window_ms: int = 0  # 0: no limit
    max_emoji: int = 20  # distinct emoji on one message
    max_per_user: int = 10  # reactions of one user on one message
    #: A delete by a room admin or owner: any message of the room (``by_moderator``).
    moderator: bool = False


class MessageChanges(Protocol):
    """Edits, deletes and reactions: entries of the room's stream, with their own seq."""

    async def change(self, req: ChangeRequest) -> tuple[Message | None, bool]:
        """Check the target and the rules, append the change entry and update the target's
        state, at once and durably.  ``(entry, True)``; ``(first entry, False)`` for a
        repeated token; ``(None, False)`` for a reaction already on (off).  A refusal raises
        ``errors.refusal(code)`` and changes nothing."""


@dataclass(frozen=True)
class ModerationRequest:
    """One role or moderation action, as ``chat/core/moderation.py`` hands it to
    ``RoleStore.moderate``."""

    action: str  # kick | ban | unban | mute | unmute | role | transfer
    room: str
    actor: UserRef
    target: UserRef
    random: str  # the entry's id is "<seq>.<random>"
    #: The actor is a service admin: an owner of every room (``service_admins_key``).
    service_admin: bool = False
    duration_ms: int = 0  # ban (0: until unbanned) and mute
    role: str | None = None  # role: "admin" | "member"


class RoleStore(Protocol):
    """Roles, bans and mutes per room, and the moderation entries of the room's stream."""

    async def roles(self, room_ids: Collection[str]) -> dict[str, dict[str, str]]:
        """Per room, the users listed with a role (``owner``/``admin``; absent: member)."""

    async def service_admin(self, user_id: str) -> bool:
        """Whether the user is a bot with an admin-scoped service token."""

    async def restricted(self, room_id: str, user_id: str, what: str) -> int | None:
        """``what`` ``ban`` or ``mute``: its expiry in ms (0: none) while in force, else None."""

    async def moderate(self, req: ModerationRequest) -> Message | None:
        """Check the rules against the stored roles, membership and restrictions, apply the
        action and append its ``moderation`` entry, at once and durably.  None when nothing
        changed (unban/unmute of nobody restricted).  A refusal raises
        ``errors.moderation_refusal(code)`` and changes nothing.  Idempotent per request
        (its ``random``, for 10 minutes): the same request again answers the entry it
        appended, and appends nothing."""


class AccountStore(Protocol):
    async def create(self, user: UserRecord, email_key: str, password_hash: str) -> bool:
        """Store a new user; False when the email is already taken."""

    async def account(self, email_key: str) -> Account | None: ...

    async def set_password_hash(self, email_key: str, password_hash: str) -> None: ...

    async def user(self, user_id: str) -> UserRecord | None: ...

    async def users(self, user_ids: Iterable[str]) -> dict[str, UserRecord]: ...

    async def set_name(self, user_id: str, name: str) -> None: ...

    async def set_receipts(self, user_id: str, on: bool) -> None:
        """The user's receipts setting (``UserRecord.receipts``)."""

    async def create_bot(self, user: UserRecord) -> None:
        """Store the user of a service token (``bot``: no email, no account to log in with);
        in the lobby like every user."""


class ServiceTokenStore(Protocol):
    """Service tokens (``chat/core/service.py``), one record each, and the user ids of the
    bots whose token has the ``admin`` scope."""

    async def add(self, token: ServiceToken) -> None:
        """Store a new token; with the ``admin`` scope its user becomes a service admin, in
        the same write.  ``RuntimeError`` when another token has its id; the same record
        again (a resend) changes nothing."""

    async def get(self, token_id: str) -> ServiceToken | None: ...

    async def all(self) -> list[ServiceToken]: ...

    async def revoke(self, token_id: str, now_ms: int) -> ServiceToken | None:
        """Mark the token revoked (its hash dropped) and its user no admin; the record as it
        is now (revoked already: unchanged), None for an unknown id."""

    async def is_admin(self, user_id: str) -> bool:
        """Whether the user is a bot of an ``admin`` token in force (the store of record)."""


class ReadStore(Protocol):
    """Read positions and the unread and mention counts derived from them, per room, without
    reading the history (the counters the history's append keeps)."""

    async def mark(self, room: str, user_id: str, seq: int) -> tuple[str, RoomCounts, int]:
        """Move the user's read position forward to ``seq``: ``(outcome, counts after,
        how many members the room's member set has)``; outcome ``moved``, ``same`` (``seq``
        not above the position: nothing changed) or ``beyond`` (``seq`` above the room's
        last seq: nothing changed)."""

    async def counts(self, user_id: str, rooms: Collection[str]) -> dict[str, RoomCounts]:
        """Each room's counts for the user (sent together: one round trip per master)."""

    async def positions(self, room: str, user_ids: Collection[str]) -> dict[str, int]:
        """The read positions of those users who have one in the room."""


class Limits(Protocol):
    """Limits shared by every node."""

    async def take(
        self, scope: str, ident: str, rate: float, burst: int, want: int = 1
    ) -> tuple[int, float]:
        """Take up to ``want`` tokens: ``(granted, 0)``, or ``(0, seconds to wait)``."""

    async def cooldown(self, op: str, counters: Mapping[str, int]) -> float:
        """Failure counters with a doubling cool-down (the login throttles), named by their
        keys (``chat/keys.py``, all in one cluster slot) with each one's failure limit.

        ``check``: the longest cool-down left among them, in seconds (0: none).  ``fail``:
        count a failure in each counter not cooling down; one that reaches its limit starts a
        cool-down (doubling with each, up to a cap) and counts afresh.  ``ok``: forget them."""

    async def revoke(self, jti: str, seconds: float) -> None: ...

    async def is_revoked(self, jti: str) -> bool: ...

    async def once(self, scope: str, ident: str, seconds: float) -> bool:
        """True the first time in ``seconds`` (a throttle shared by every node)."""


class SessionStore(Protocol):
    """Sign-ins (refresh token families, secrets stored as SHA-256 digests only) and each
    user's session generation (see ``chat/core/sessions.py``)."""

    async def start(
        self, user_id: str, family: str, digest: str, ttl_ms: int, max_families: int
    ) -> int:
        """Store a new family; return the user's generation."""

    async def rotate(
        self, user_id: str, family: str, presented: str, digest: str, ttl_ms: int, grace_ms: int
    ) -> tuple[str, int]:
        """``(outcome, generation)``: ``rotated`` (``digest`` is now current), ``grace`` (the
        previous secret, just rotated by a concurrent refresh), ``reused`` (an older secret:
        the family is ended) or ``unknown`` (no such family, ended or expired)."""

    async def end(self, user_id: str, family: str) -> None: ...

    async def end_all(self, user_id: str) -> int:
        """End every family of the user and raise the generation; return the new one."""

    async def generation(self, user_id: str) -> int: ...

    async def alive(self, user_id: str, family: str, generation: int) -> bool:
        """False when ``generation`` is older than the user's, or ``family`` (if any) ended."""


class RoomStore(Protocol):
    """Rooms and membership.  The lobby always exists and everyone is in it."""

    async def create(
        self, room_id: str, name: str, private: bool, creator: str, *, managed: bool = False,
        member_limit: int = 0,
    ) -> Room | None:  # fmt: skip
        """Create with the creator as member and owner; None when the id is taken."""

    async def set_settings(
        self, room_id: str, managed: bool | None, member_limit: int | None
    ) -> None:
        """Change what is not None (``managed`` true also makes the room private)."""

    async def member_count(self, room_id: str) -> int: ...

    async def ensure_dm(self, room_id: str) -> None:
        """List the DM room for both users; ``no_user`` when either has no record (deleted),
        ``forbidden`` when either blocked the other, each checked with the listing in one step;
        a refused DM is listed for neither (unless it was before)."""

    async def get(self, room_id: str) -> Room | None: ...

    async def get_many(self, room_ids: Iterable[str]) -> dict[str, Room]: ...

    async def add_member(self, room_id: str, user_id: str, most: int = 0) -> bool:
        """Add a member; True if they were not one.  ``too_many`` when the user is in as many
        rooms as allowed; ``room_full`` (nothing changed) when the room has ``most`` members
        already (0: no bound), decided in the same step as the add."""

    async def remove_member(self, room_id: str, user_id: str) -> bool: ...

    async def is_member(self, room_id: str, user_id: str) -> bool: ...

    async def members_page(
        self, room_id: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """``{id, name, online}`` of members ``offset`` to ``offset + limit``, online first,
        then by name; and how many members there are.  Costs the page, not the room."""

    async def user_rooms(self, user_id: str) -> set[str]:
        """Every room the user is a member of, the lobby and their listed DMs included.
        Checked against each room's members, the store of record: the user's list of rooms
        is an index written beside them, not in the same step, so it can be ahead (an
        invite whose second write failed) and must never let a socket follow a room."""

    async def listed_rooms(self, user_id: str) -> set[str]:
        """The user's list of rooms as stored, members or not (what a deletion cleans up)."""

    async def public_rooms(self) -> set[str]: ...


class PresenceStore(Protocol):
    """The connection registry (see ``chat/core/presence.py``)."""

    node_id: str

    async def register(
        self, user_id: str, sid: str, incarnation: str, now: int, most: int = 0
    ) -> int:
        """Record a connection unless the user has ``most`` already (0: no bound): 1 if the
        user just came online, 0 if not, -1 if refused."""

    async def unregister(self, user_id: str, sid: str, due: float) -> None: ...

    async def forget_user(self, user_id: str, incarnation: str) -> None: ...

    async def due(self, now: float, limit: int = 100) -> list[str]: ...

    async def settle(self, user_id: str, now: int) -> bool:
        """Offline if nothing is registered; True if the user just went offline.  The same
        call again (``now`` included) answers True again while the user stays offline: a
        retry of one whose answer was lost is still announced."""

    async def online(self, user_ids: list[str]) -> dict[str, bool]: ...

    async def online_count(self) -> int: ...

    async def renew(self, incarnation: str, lease_ms: int) -> bool: ...

    async def release(self, incarnation: str) -> None: ...

    async def dead_nodes(self) -> list[tuple[str, str]]: ...

    async def live_nodes(self) -> list[str]:
        """Every node whose lease is running, this one included."""

    async def claim_purge(self, node_id: str, incarnation: str) -> bool: ...

    async def users_of(self, node_id: str, incarnation: str) -> list[str]: ...

    async def purge_user(
        self, node_id: str, incarnation: str, user_id: str, now: int
    ) -> tuple[int, bool]: ...

    async def forget_node(self, node_id: str, incarnation: str) -> None: ...


#: A node's step of the shard set: ``(epoch, phase)`` (``Layout.step``).
Step = tuple[int, str]


class ShardSetStore(Protocol):
    """The record of truth of the pub/sub shard set (one per deployment) and each node's
    acknowledgement of the step it runs."""

    async def read(self) -> Layout | None:
        """The layout in force, None before the first node created it."""

    async def write(self, layout: Layout, expected: Step | None) -> bool:
        """Store ``layout`` only if the stored step is still ``expected`` (None: no record);
        False, and nothing written, otherwise."""

    async def ack(self, node_id: str, step: Step) -> None:
        """Record that ``node_id`` runs ``step``."""

    async def acks(self) -> dict[str, Step]:
        """The step each node last acknowledged (dead nodes included: filter by lease)."""

    async def forget(self, node_ids: Collection[str]) -> None:
        """Drop the acknowledgements of these nodes (gone ones; a live one writes its own
        again within a second)."""


class ShardSwitch(Protocol):
    """The node's broker as a follower of the shard set sees it."""

    @property
    def layout(self) -> Layout: ...

    def adopt(self, layout: Layout) -> None:
        """Start on ``layout`` instead of the configured set (before the broker starts)."""

    async def apply(self, layout: Layout) -> bool:
        """Step a running broker to ``layout``; True once every followed channel is
        subscribed where the step receives it (then the step may be acknowledged)."""


#: PING of a shard URL with the deployment's credentials: True if it answered.
Probe = Callable[[str], Awaitable[bool]]


class PeopleStore(Protocol):
    """Blocks between users, the display-name index of user search, and what account deletion
    removes or marks (``chat/core/people.py``, ``chat/core/deletion.py``)."""

    async def block(self, user_id: str, target: str, most: int) -> bool:
        """Add ``target`` to the user's blocks and close the two users' DM gate for it (the
        history's append then refuses their DMs); False (nothing changed) when the user has
        ``most`` blocks already and ``target`` is not among them."""

    async def unblock(self, user_id: str, target: str) -> None:
        """Drop the block and its part of the DM gate (the other user's block stays)."""

    async def blocks(self, user_id: str) -> set[str]:
        """The users ``user_id`` blocked."""

    async def close_dms(self, user_id: str) -> None:
        """Close the gate of every DM of a deleted user (after ``forget``: a DM listed
        concurrently was either listed before the record went, and is closed here, or refused
        by ``RoomStore.ensure_dm``)."""

    async def search(self, prefix: str, offset: int, limit: int) -> list[tuple[str, str]]:
        """Index entries ``(user id, lowercased name)`` whose name starts with ``prefix``
        (lowercased), by name then id, ``offset`` to ``offset + limit``."""

    async def unindex(self, user_id: str, lowered_name: str) -> None:
        """Drop one entry of the name index (a stale one, or a deleted user's)."""

    async def reindex(self, users: Iterable[UserRecord]) -> None:
        """Index these users under their current names (``chat users reindex``)."""

    async def deleted(self, user_ids: Collection[str]) -> set[str]:
        """Those of ``user_ids`` whose account was deleted."""

    async def forget(self, user: UserRecord, email_key: str) -> None:
        """Account deletion: mark the user deleted (first, so that read paths show the neutral
        name from then on), then remove the login record if it still names the user (the
        email is free again), the user record, the name index entry, the blocks and the room
        list.  Idempotent: an interrupted deletion is finished by running it again."""
