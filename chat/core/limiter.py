"""Per-user limits of everything a client can repeat: token buckets in the cluster, spent
locally in small leases.

One table (``chat/config.py`` ``EVENT_LIMITS``, overridable with ``CHAT_EVENT_LIMITS``) gives
each *row* a rate and a burst; every Socket.IO event and every signed-in REST route spends one
token of its row, for its user, before anything else runs.  Asking the cluster every time would
cost each request a round trip.  Instead a node takes a few tokens at once (up to a quarter of
the burst, at most 5) and spends them on the user's next requests of that row here; a lease it
has not spent within a minute is dropped (not returned, so a user moving between nodes meets
the limit a little early, never late).  The limit therefore holds across all nodes, as the
bucket is one, at the price of a granularity of a few tokens: at any time a node holds at most
one lease per user and row, so however long a lease lives, a user can exceed the burst by at
most one lease per node.  A lease lives long enough for the pace of a person (a message every
few seconds costs one bucket call per five messages, not one per message).  A refusal is
remembered here for the wait the bucket gave (no token can appear sooner: tokens are never
given back), so a client that goes on sending past its limit costs no round trip per event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from chat.errors import rate_limited
from chat.ports import Limits

if TYPE_CHECKING:  # connections uses the limiter for handshakes
    from chat.core.connections import Conn

LEASE_SECONDS = 60.0
LEASES_MAX = 100_000

#: Events that spend another event's row: a message is a message, however it is sent, and
#: a change of one (edit, delete, reaction) is one more entry in the room's stream.
SHARED_ROWS = {
    "dm": "send", "edit": "send", "delete": "send", "react": "send",
    # Moderation and roles: one row for every action of an admin or owner.
    **dict.fromkeys(
        ("kick", "ban", "unban", "mute", "unmute", "role", "transfer", "room_settings"),
        "moderate",
    ),
    "unblock": "block", "users": "search",
}  # fmt: skip

Handler = Callable[["Conn", dict[str, Any]], Awaitable[dict[str, Any]]]

K = TypeVar("K")
V = TypeVar("V")


def _with_room(table: dict[K, V], live: Callable[[V], bool]) -> dict[K, V]:
    """``table``, or at ``LEASES_MAX`` entries only its live ones (none if all are): a bound,
    where what is forgotten only costs a round trip to the cluster."""
    if len(table) < LEASES_MAX:
        return table
    table = {k: v for k, v in table.items() if live(v)}
    return table if len(table) < LEASES_MAX else {}


class EventLimiter:
    def __init__(
        self,
        limits: Limits,
        table: Mapping[str, tuple[float, int]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = limits
        self._table = dict(table)
        self._clock = clock
        self._leases: dict[tuple[str, str], tuple[int, float]] = {}  # -> (tokens left, expiry)
        #: The bucket call in flight per lease; it resolves to None, or the wait it was refused.
        self._asking: dict[tuple[str, str], asyncio.Future[float | None]] = {}
        self._refused: dict[tuple[str, str], float] = {}  # -> until (clock) the bucket is empty

    def row(self, name: str) -> str:
        """The row an event spends; raises for an event without one, so that a new event
        cannot be served unlimited (the node refuses to start)."""
        row = SHARED_ROWS.get(name, name)
        if row not in self._table:
            raise LookupError(f"event {name!r} has no row in the limit table (EVENT_LIMITS)")
        return row

    async def take(self, row: str, user_id: str) -> None:
        """Spend one token of the user's row, or raise ``rate_limited`` (with the wait).

        One bucket call per lease at a time: takes that find the lease empty while a call is
        out wait for its grant and spend from it.  Each asking on its own would draw a lease
        of its own, and all but the last would be dropped unspent: a burst sent at once
        (a bot that does not await each ack) was refused after a fifth of its tokens."""
        lease = (row, user_id)
        until = self._refused.get(lease)
        if until is not None:
            wait = until - self._clock()
            if wait > 0:
                raise rate_limited(wait)
            del self._refused[lease]
        while not self._spend(lease):
            asking = self._asking.get(lease)
            if asking is None:
                await self._ask(row, user_id, lease)
                return
            # Shielded: a waiter cancelled (its socket gone) must not cancel the others' wait.
            refused = await asyncio.shield(asking)
            if refused is not None:  # the bucket was empty a moment ago: so it is for this one
                raise rate_limited(refused)

    def _spend(self, lease: tuple[str, str]) -> bool:
        left, expires = self._leases.get(lease, (0, 0.0))
        if left > 0 and self._clock() < expires:
            self._leases[lease] = (left - 1, expires)
            return True
        return False

    async def _ask(self, row: str, user_id: str, lease: tuple[str, str]) -> None:
        """Ask the bucket for a lease, spend one token of it, keep the rest here."""
        rate, burst = self._table[row]
        chunk = max(1, min(5, burst // 4))
        asking: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        self._asking[lease] = asking
        refused: float | None = None
        try:
            granted, wait = await self._limits.take(row, user_id, rate, burst, want=chunk)
            if not granted:
                refused = wait
                self._remember(lease, wait)
                raise rate_limited(wait)
            self._keep(lease, granted - 1)
        finally:  # also on an error or a cancellation: the waiters then ask themselves
            del self._asking[lease]
            asking.set_result(refused)

    def _remember(self, lease: tuple[str, str], wait: float) -> None:
        now = self._clock()
        self._refused = _with_room(self._refused, lambda until: until > now)
        self._refused[lease] = now + wait

    def _keep(self, lease: tuple[str, str], tokens: int) -> None:
        now = self._clock()
        self._leases = _with_room(self._leases, lambda v: v[0] > 0 and v[1] > now)
        self._leases[lease] = (tokens, now + LEASE_SECONDS)

    def guard(self, events: Mapping[str, Handler]) -> dict[str, Handler]:
        """The handlers, each spending its row's token of the calling user first."""
        return {name: self._guarded(self.row(name), handler) for name, handler in events.items()}

    def _guarded(self, row: str, handler: Handler) -> Handler:
        async def limited(conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
            await self.take(row, conn.user.id)
            return await handler(conn, payload)

        return limited
