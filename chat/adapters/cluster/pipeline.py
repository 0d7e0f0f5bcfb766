"""The cluster client's own pipelining: every command sent in one event-loop iteration leaves
in one write per master, durable writes share ``WAIT``s (group commit), and a script a node
lacks is loaded there and only its calls sent again.

Each master gets two pipelined connections of our own (``resp.py``), not redis-py's pools:
- *plain*: every batch without a durable write, written at once, however many are in flight;
- *durable*: batches that end with ``WAIT``, one in flight at a time.  ``WAIT`` blocks its
  connection until a replica acknowledged (or ``replica_wait_ms`` passed), so a second batch
  behind it would wait anyway; instead, what arrives meanwhile is merged and sent as one batch
  with one ``WAIT`` once the first is answered.  A slow replica thus delays a master's
  durable writes by at most two waits, never by a queue of them, and a busy master pays one
  ``WAIT`` (and its replication round trip) per batch instead of per message.

Callbacks, not tasks: a batch is a write and a callback on its replies, which resolve each
caller's future as soon as that master answers (a slow master delays no other's callers),
and no caller owns a connection or a lane, so one that gives up strands nobody behind it.

Every command is answered within ``COMMAND_TIMEOUT`` (plus at most a sweep interval): a
sweeper fails what is still unanswered by then, whatever held it, with a timeout.  One timer
per pipeline, not one per command.

Nothing here retries: a command whose master is unknown or whose connection failed gets a
retriable exception, and ``Cluster.send`` retries it.  A connection that failed or timed out
(``resp.py``: its replies can no longer be trusted) is replaced on the next batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterDownError, ConnectionError, NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat.adapters.redis_common import COMMAND_TIMEOUT, RedisAccess
from chat.adapters.resp import RespConnection, RespSlot
from chat.errors import unavailable

#: Commands of one iteration sent at once when this many are waiting already.
MAX_BATCH = 512
#: Seconds between two sweeps for unanswered commands.
SWEEP_EVERY = 0.5


@dataclass(frozen=True)
class Command:
    key: str  # routes the command: the master of this key's slot
    args: tuple[Any, ...]
    durable: bool = False


#: A command and the future of its reply (an error reply is its exception).
Item = tuple[Command, "asyncio.Future[Any]"]


class _Lane:
    """A master's durable batches: whether one is in flight, and the groups waiting."""

    __slots__ = ("busy", "waiting")

    def __init__(self) -> None:
        self.busy = False
        self.waiting: list[list[Item]] = []


class Pipeline:
    def __init__(
        self,
        client: RedisCluster,
        *,
        replica_wait_ms: int,
        has_replica: Callable[[ClusterNode], bool],
        access: RedisAccess,
        client_name: str,
    ) -> None:
        self._client = client
        self._wait_ms = replica_wait_ms
        self._has_replica = has_replica
        self._access = access
        self._client_name = client_name
        self._scripts: dict[str, str] = {}
        self._items: list[Item] = []
        self._scheduled = False
        #: The connections to each master ("host:port"): plain (False) and durable (True).
        self._slots: dict[tuple[str, bool], RespSlot] = {}
        self._lanes: dict[str, _Lane] = {}
        self._reloads: set[asyncio.Task[None]] = set()
        self._closed = False
        #: Every command's deadline, in the order sent (so deadlines are in order too).
        self._deadlines: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None

    def register(self, sha: str, source: str) -> None:
        """A script the pipeline may have to load on a node that lacks it."""
        self._scripts[sha] = source

    def master_of(self, key: str) -> ClusterNode:
        node = self._client.get_node_from_key(key)
        if node is None:
            raise ClusterDownError(f"no master for {key}")
        return node

    def enqueue(self, command: Command) -> asyncio.Future[Any]:
        """The future of the command's reply (an error reply is its exception), sent with
        every other command of this loop iteration: this is every cluster command's way out."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._items.append((command, future))
        self._deadlines.append((loop.time() + COMMAND_TIMEOUT, future))
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP_EVERY, self._sweep)
        if len(self._items) >= MAX_BATCH:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _sweep(self) -> None:
        loop, deadlines = asyncio.get_running_loop(), self._deadlines
        now = loop.time()
        while deadlines and (deadlines[0][1].done() or deadlines[0][0] <= now):
            future = deadlines.popleft()[1]
            if not future.done():  # retried by Cluster.send, like a lost connection
                future.set_exception(RedisTimeoutError(f"no reply in {COMMAND_TIMEOUT} s"))
        self._sweeper = loop.call_later(SWEEP_EVERY, self._sweep) if deadlines else None

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        items, self._items = self._items, []
        self._fail(items, ConnectionError("the cluster client is closed"))
        for slot in self._slots.values():
            slot.close()  # its batches fail; their lanes see the client closed
        for task in self._reloads:
            task.cancel()
        await asyncio.gather(*self._reloads, return_exceptions=True)

    def _flush(self) -> None:
        self._scheduled = False
        items, self._items = self._items, []
        if self._closed:
            self._fail(items, ConnectionError("the cluster client is closed"))
            return
        groups: dict[str, tuple[ClusterNode, list[Item]]] = {}
        for item in items:
            try:
                node = self.master_of(item[0].key)
            except Exception as exc:  # no master for the slot (a failover): retried by send()
                if not item[1].done():
                    item[1].set_exception(exc)
                continue
            groups.setdefault(node.name, (node, []))[1].append(item)
        for node, group in groups.values():
            self._send(node, group)

    def _send(self, node: ClusterNode, group: list[Item]) -> None:
        """One master's share of an iteration: on its plain connection, or into its lane."""
        group = [item for item in group if not item[1].done()]  # callers that gave up
        if not group:
            return
        if any(command.durable for command, _ in group) and self._has_replica(node):
            lane = self._lanes.setdefault(node.name, _Lane())
            lane.waiting.append(group)
            if not lane.busy:
                self._next(node, lane)
            return
        slot = self._slot(node, False)
        conn = slot.conn
        if conn is None:
            self._when_open(slot, lambda: self._send(node, group), partial(self._fail, group))
            return
        try:
            sent = conn.send([command.args for command, _ in group])
        except Exception as exc:  # closed under us (retried), or an argument Redis can't take
            self._fail(group, exc)
            return
        sent.add_done_callback(lambda done: self._answered(node, [group], done, durable=False))

    def _next(self, node: ClusterNode, lane: _Lane) -> None:
        """Send every group waiting in ``lane`` as one batch ending with ``WAIT``; the lane's
        next batch leaves once this one is answered."""
        groups = [live for group in lane.waiting if (live := [i for i in group if not i[1].done()])]
        lane.waiting = []
        if self._closed:
            for group in groups:
                self._fail(group, ConnectionError("the cluster client is closed"))
            groups = []
        lane.busy = bool(groups)
        if not groups:
            return
        slot = self._slot(node, True)
        conn = slot.conn
        if conn is None:  # opened first; then whatever waits by then goes
            lane.waiting = groups
            self._when_open(slot, lambda: self._next(node, lane), lambda e: self._drop(lane, e))
            return
        commands = [command.args for group in groups for command, _ in group]
        try:
            sent = conn.send([*commands, ("WAIT", 1, self._wait_ms)])
        except Exception as exc:
            for group in groups:
                self._fail(group, exc)
            self._next(node, lane)
            return
        sent.add_done_callback(lambda done: self._answered(node, groups, done, durable=True))
        sent.add_done_callback(lambda _: self._next(node, lane))  # then what waited meanwhile

    def _drop(self, lane: _Lane, exc: BaseException) -> None:
        waiting, lane.waiting, lane.busy = lane.waiting, [], False
        for group in waiting:
            self._fail(group, exc)

    def _answered(
        self, node: ClusterNode, groups: list[list[Item]], done: asyncio.Future[list[Any]],
        *, durable: bool,
    ) -> None:  # fmt: skip
        failed = ConnectionError(node.name) if done.cancelled() else done.exception()
        if failed is not None:
            for group in groups:
                self._fail(group, failed)
            return
        replies = done.result()
        # The WAIT's reply: how many replicas have every write of the batch.
        late = durable and (isinstance(replies[-1], Exception) or replies[-1] < 1)
        at, again = 0, []
        for group in groups:
            for (command, future), reply in zip(group, replies[at : at + len(group)], strict=True):
                if isinstance(reply, NoScriptError) and command.args[1] in self._scripts:
                    again.append((command, future))  # did not run: loaded, then sent again
                elif future.done():
                    continue
                elif late and command.durable and not isinstance(reply, Exception):
                    future.set_exception(
                        unavailable("no replica acknowledged the write in time, retry")
                    )
                elif isinstance(reply, BaseException):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
            at += len(group)
        if again:
            task = asyncio.ensure_future(self._reload(node, again))
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)

    async def _reload(self, node: ClusterNode, group: list[Item]) -> None:
        """Load the scripts ``group`` calls on ``node``, then send the calls again."""
        shas = {command.args[1] for command, _ in group}
        try:
            conn = await self._slot(node, False).connect()
            await conn.send([("SCRIPT", "LOAD", self._scripts[sha]) for sha in shas])
        except Exception as exc:
            self._fail(group, exc)
            return
        self._send(node, group)

    @staticmethod
    def _fail(group: list[Item], exc: BaseException) -> None:
        for _, future in group:
            if not future.done():
                future.set_exception(exc)

    # --- connections -----------------------------------------------------------------

    def _slot(self, node: ClusterNode, durable: bool) -> RespSlot:
        key = (node.name, durable)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = RespSlot(
                node.host, int(node.port), access=self._access, client_name=self._client_name,
                timeout=COMMAND_TIMEOUT,
            )  # fmt: skip
        return slot

    def _when_open(
        self, slot: RespSlot, then: Callable[[], None], failed: Callable[[BaseException], None]
    ) -> None:
        """``then()`` once ``slot`` has its connection open, else ``failed(exc)``."""
        try:
            opening = slot.opening()
        except ConnectionError as exc:  # the client is closed
            failed(exc)
            return

        def after(done: asyncio.Future[RespConnection]) -> None:
            if done.cancelled():
                failed(ConnectionError("the cluster client is closed"))
            elif (exc := done.exception()) is not None:
                failed(exc)  # retried by the callers, with backoff
            else:
                then()

        opening.add_done_callback(after)
