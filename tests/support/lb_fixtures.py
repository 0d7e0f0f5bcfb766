"""Helpers for the load-balancer tests: chat nodes behind a real nginx, and clients that
reconnect through it on their own and keep a room's whole history."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from sioclient import call_unless_gone
from stack import Stack, start_stack

from chat import keys
from devstack.cluster import RedisFleet
from devstack.net import pick_free_ports
from devstack.nginx import NginxError, NginxProcess, find_nginx
from devstack.procs import log_tail

CALL_TIMEOUT = 10.0


def require_nginx() -> Path:
    try:
        return find_nginx()
    except NginxError as exc:
        pytest.skip(f"!!! NO NGINX: the load-balancer tests did NOT run !!! {exc}")


@contextlib.contextmanager
def lb_stack(
    fleet: RedisFleet, tmp_path: Path, secret: str, *, nodes: int = 3, **extra: str
) -> Iterator[tuple[Stack, NginxProcess]]:
    """``nodes`` chat nodes behind nginx; logs (nodes', nginx's) in ``tmp_path``."""
    binary = require_nginx()
    (port,) = pick_free_ports(1)
    # The browser's origin is the balancer's; X-Forwarded-For is believed from it.
    origins = f"http://localhost:{port},http://127.0.0.1:{port}"
    with start_stack(
        fleet, tmp_path, secret, nodes=nodes, trusted_proxies="127.0.0.1", origins=origins, **extra
    ) as stack:
        backends = [f"127.0.0.1:{n.port}" for n in stack.nodes]
        with NginxProcess(port, backends, tmp_path / "nginx", binary=binary) as lb:
            yield stack, lb


@contextlib.contextmanager
def logs_on_failure(lb: NginxProcess, stack: Stack) -> Iterator[None]:
    """Print the tails of nginx's and the nodes' logs if the block fails."""
    try:
        yield
    except BaseException:
        for name, path in [("nginx access", lb.access_log), ("nginx error", lb.error_log)]:
            print(f"----- {name} log ({path}) -----\n{log_tail(path, 40)}")
        for node in stack.nodes:
            print(f"----- {node.node_id} ({node.log_path}) -----\n{log_tail(node.log_path, 15)}")
        raise


def socketio_statuses(access_log: Path) -> dict[int, int]:
    """How many /socket.io/ requests nginx answered with each status."""
    counts: dict[int, int] = {}
    for match in re.finditer(r'"\w+ /socket\.io/\S* HTTP/[\d.]+" (\d{3}) ', access_log.read_text()):
        status = int(match.group(1))
        counts[status] = counts.get(status, 0) + 1
    return counts


async def node_connections(stack: Stack) -> dict[str, float]:
    """``chat_connections`` of every node that answers /metrics."""
    found = {}
    async with aiohttp.ClientSession() as http:
        for node in stack.nodes:
            if node.proc is None or node.proc.poll() is not None:
                continue
            async with http.get(node.metrics_url + "/metrics") as resp:
                text = await resp.text()
            line = next(ln for ln in text.splitlines() if ln.startswith("chat_connections "))
            found[node.node_id] = float(line.split()[1])
    return found


def placement(fleet: RedisFleet, stack: Stack, clients: list[RoomClient]) -> dict[str, str]:
    """Client name -> id of the live node holding its socket, from the presence registry
    (``{u:<id>}:conns``, one field ``<node>/<sid>`` per socket).  A client with sockets on
    two live nodes (an old one not yet timed out) is left out."""
    live = {n.node_id for n in stack.nodes if n.proc is not None and n.proc.poll() is None}
    where = {}
    for client in clients:
        key = keys.user_conns_key(client.user_id)
        fields = fleet.master_for_key(key).command("HKEYS", key)
        nodes = {str(f).split("/")[0] for f in fields} & live
        if len(nodes) == 1:
            where[client.name] = nodes.pop()
    return where


@dataclass
class Run:
    """What one connection received live: the room's ``last_seq`` at its start, then seqs."""

    base: int | None
    seqs: list[int]


class RoomClient:
    """A python-socketio client with reconnection on, as an application would have it: on
    every ``session`` it syncs the room from the last seq it holds without a gap."""

    def __init__(
        self, name: str, user_id: str, room: str, transport: str, progress: asyncio.Condition
    ) -> None:
        self.name, self.user_id, self.room, self.transport = name, user_id, room, transport
        self.progress = progress
        # One cookie jar for the client's whole life, as a browser has.  (Without it,
        # python-engineio makes a new aiohttp session per connection, and a race in its
        # AsyncClient._reset can drop the new one, cookies and all, while a reconnect is
        # using it: the session's later requests then carry no affinity cookie.)
        self.http = aiohttp.ClientSession()
        self.sio = socketio.AsyncClient(
            reconnection=True,
            reconnection_delay=0.2,
            reconnection_delay_max=1,
            http_session=self.http,
        )
        self.messages: dict[int, dict] = {}
        self.contiguous = 0  # every seq up to here is held
        self.runs: list[Run] = []
        self.sessions = 0
        self.disconnects: list[Any] = []
        self.connect_errors: list[Any] = []
        self.up, self.down = asyncio.Event(), asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        for event in ("connect", "disconnect", "connect_error", "session", "message"):
            self.sio.on(event, getattr(self, f"_on_{event}"))

    async def connect(self, url: str, token: str) -> None:
        await self.sio.connect(
            url, auth={"token": token}, transports=[self.transport], wait_timeout=CALL_TIMEOUT
        )
        await asyncio.wait_for(self.up.wait(), CALL_TIMEOUT)

    async def _on_connect(self) -> None:
        self.down.clear()

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.up.clear()
        self.down.set()
        self.disconnects.append(reason)

    async def _on_connect_error(self, data: Any = None) -> None:
        self.connect_errors.append(data)

    async def _on_session(self, data: dict) -> None:
        room = next((r for r in data["rooms"] if r["id"] == self.room), None)
        self.runs.append(Run(room["last_seq"] if room else None, []))
        self.sessions += 1
        self.up.set()
        if room is not None:  # the first session comes before the join
            task = asyncio.create_task(self._sync())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await self._notify()

    async def _on_message(self, message: dict) -> None:
        if message["room"] == self.room:
            self.runs[-1].seqs.append(message["seq"])
            await self._store([message])

    async def _store(self, messages: list[dict]) -> None:
        for message in messages:
            held = self.messages.setdefault(message["seq"], message)
            assert held["id"] == message["id"], (self.name, held, message)
        while self.contiguous + 1 in self.messages:
            self.contiguous += 1
        await self._notify()

    async def _notify(self) -> None:
        async with self.progress:
            self.progress.notify_all()

    async def _sync(self) -> None:
        """What this socket's ``last_seq`` covers and we miss; live events bring the rest.
        A disconnect ends it: the next session syncs again."""
        after = self.contiguous
        while True:
            try:
                ack = await self.call("sync", {"rooms": {self.room: after}})
            except (ConnectionError, socketio.exceptions.SocketIOError):
                return
            entry = ack["rooms"][self.room]
            assert "error" not in entry, (self.name, entry)
            await self._store(entry["messages"])
            if not entry["has_more"]:
                return
            after = entry["messages"][-1]["seq"]

    async def join(self) -> None:
        ack = await self.call("join", {"room": self.room})
        assert ack["ok"], ack
        self.runs[-1].base = ack["room"]["last_seq"]

    async def call(self, event: str, data: dict, timeout: float = CALL_TIMEOUT) -> Any:
        """Emit with an ack once connected; ConnectionError if the connection drops first."""
        await self.up.wait()
        return await call_unless_gone(self.sio, self.down, event, data, timeout=timeout)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.sio.disconnect()
        await self.http.close()


class Sender:
    """Sends to the room, one message at a time, the next once the last is seen back (the
    pace of a person chatting, set by the system itself).  A lost ack (connection dropped,
    timeout) or ``unavailable`` is retried with the same cid after the client reconnected."""

    def __init__(self, client: RoomClient) -> None:
        self.client = client
        self.acked: list[dict] = []
        self.lost_acks = 0
        self.unavailable = 0
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        client = self.client
        for n in itertools.count():
            if self.stopped.is_set():
                return
            cid = f"{client.name}-{n}"
            message = await self._send({"room": client.room, "text": cid, "cid": cid})
            self.acked.append(message)
            async with client.progress:
                client.progress.notify_all()
                await client.progress.wait_for(lambda s=message["seq"]: s in client.messages)

    async def _send(self, payload: dict) -> dict:
        while True:
            try:
                ack = await self.client.call("send", payload)
            except (ConnectionError, socketio.exceptions.SocketIOError):
                self.lost_acks += 1  # stored or not: the retry with this cid tells
                continue
            if ack["ok"]:
                return ack["message"]
            assert ack["error"]["code"] == "unavailable", ack
            self.unavailable += 1
            await asyncio.sleep(0.05)  # a client's retry delay, not a synchronisation
