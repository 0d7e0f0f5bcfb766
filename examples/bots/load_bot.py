"""A load generator: N simulated users on all nodes, an open-loop send rate, a loss report.

    python examples/bots/load_bot.py --users 50 --rate 100 --duration 30 --mode dm

Users <prefix>-<i>@example.com are registered (or logged in), user i connects to node i mod
len(urls), messages leave at --rate per second whatever the acks do; the summary says what was
acknowledged and what reached each socket it should have.  Exit status 1 when anything was
lost, duplicated or never acknowledged.  More in README.md beside this file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import secrets
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio
from chat_rest import Account, Fatal
from tqdm import tqdm

RETRIABLE = {"unavailable", "rate_limited"}


@dataclass
class Sent:
    sender: int
    expected: frozenset[int]  # the users whose socket must receive it
    t_sent: float
    t_ack: float | None = None
    got: dict[int, float] = field(default_factory=dict)  # user -> time of delivery


class LoadRun:
    def __init__(self, args: argparse.Namespace, users: list[Account]) -> None:
        self.args, self.users = args, users
        self.tag = secrets.token_hex(3)
        self.clients: list[socketio.AsyncClient] = []
        self.sent: dict[str, Sent] = {}  # by cid
        self.counts = {"failed": 0, "retries": 0, "duplicates": 0, "disconnects": 0}
        self.errors: dict[str, int] = {}
        self.pending = 0  # deliveries still due for acknowledged messages
        self.changed = asyncio.Event()
        self.stop = asyncio.Event()
        self.clock = asyncio.get_running_loop().time
        self.bar = tqdm(
            total=int(args.rate * args.duration), unit="msg", disable=args.no_progress, ncols=100
        )

    # --- connecting ------------------------------------------------------------------------

    async def connect(self) -> None:
        custom_room = self.args.mode == "room" and self.args.room != "lobby"
        if custom_room:
            await self._make_room()
        gate = asyncio.Semaphore(50)
        self.clients = [
            socketio.AsyncClient(reconnection=False, handle_sigint=False) for _ in self.users
        ]
        await asyncio.gather(*(self._connect(i, gate) for i in range(len(self.users))))
        if custom_room:
            acks = await asyncio.gather(
                *(c.call("join", {"room": self.args.room}) for c in self.clients)
            )
            if not all(ack["ok"] for ack in acks):
                raise SystemExit(f"cannot join {self.args.room}: {acks}")

    async def _connect(self, i: int, gate: asyncio.Semaphore) -> None:
        sio, url = self.clients[i], self.args.urls[i % len(self.args.urls)]
        session: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        sio.on("session", lambda data: session.done() or session.set_result(data))
        sio.on("message", lambda message: self._delivered(i, message))
        sio.on("disconnect", lambda reason=None: self.stop.is_set() or self._count("disconnects"))
        async with gate:
            token = self.users[i].token
            await sio.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
            await asyncio.wait_for(session, 10)

    async def _make_room(self) -> None:
        """Before any socket is connected: the join acks then say from where each socket
        receives the room (a socket connected while its user creates a room is subscribed to
        it by a control message, later)."""
        url, room = self.args.urls[0], self.args.room
        headers = {"Authorization": f"Bearer {self.users[0].token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/api/rooms", json={"id": room}, headers=headers) as r,
        ):
            if r.status not in (201, 409):
                raise SystemExit(f"cannot create room {room}: {r.status} {await r.text()}")

    # --- sending ---------------------------------------------------------------------------

    async def send_all(self) -> None:
        """Open loop: message n leaves at start + n / rate, however slow the acks are."""
        start, tasks = self.clock(), set()
        for n in range(self.bar.total):
            delay = start + n / self.args.rate - self.clock()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
            if self.stop.is_set():
                break
            task = asyncio.create_task(self._send(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)

    def _message(self, n: int) -> tuple[str, dict, frozenset[int]]:
        sender, everyone = n % len(self.users), len(self.users)
        cid, text = f"{self.tag}-{n}", f"load {self.tag} #{n}"
        if self.args.mode == "room":
            payload = {"room": self.args.room, "text": text, "cid": cid}
            return "send", payload, frozenset(range(everyone))
        to = random.choice([i for i in range(everyone) if i != sender])
        payload = {"to": self.users[to].user["id"], "text": text, "cid": cid}
        return "dm", payload, frozenset({sender, to})

    async def _send(self, n: int) -> None:
        event, payload, expected = self._message(n)
        record = self.sent[payload["cid"]] = Sent(n % len(self.users), expected, self.clock())
        deadline, backoff, code = record.t_sent + self.args.timeout, 0.1, "timeout"
        while (left := deadline - self.clock()) > 0:
            try:
                ack = await self.clients[record.sender].call(event, payload, timeout=left)
            except (socketio.exceptions.SocketIOError, ConnectionError) as exc:
                ack = {"ok": False, "error": {"code": type(exc).__name__}}
            if ack["ok"]:
                self._acked(record)
                return
            code = ack["error"]["code"]
            if code not in RETRIABLE:
                break
            self.counts["retries"] += 1
            await asyncio.sleep(min(backoff, max(0.0, deadline - self.clock())))
            backoff = min(backoff * 2, 2.0)
        self.errors[code] = self.errors.get(code, 0) + 1
        self._count("failed")
        self.bar.update(1)

    def _acked(self, record: Sent) -> None:
        record.t_ack = self.clock()
        self.pending += len(record.expected - record.got.keys())
        self.bar.update(1)
        self.changed.set()

    def _delivered(self, user: int, message: dict) -> None:
        record = self.sent.get(message.get("cid") or "")
        if record is None or user not in record.expected:
            return  # not this run's, or not for this user
        if user in record.got:
            self._count("duplicates")
            return
        record.got[user] = self.clock()
        if record.t_ack is not None:
            self.pending -= 1
        self.changed.set()

    def _count(self, what: str) -> None:
        self.counts[what] += 1

    # --- finishing -------------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait (event by event) for the deliveries still due, at most --drain seconds."""
        deadline = self.clock() + self.args.drain
        while self.pending > 0 and (left := deadline - self.clock()) > 0:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    async def close(self) -> None:
        self.stop.set()  # our own disconnects are not counted
        self.bar.close()
        await asyncio.gather(*(c.disconnect() for c in self.clients), return_exceptions=True)

    def summary(self) -> dict[str, Any]:
        acked = [r for r in self.sent.values() if r.t_ack is not None]
        expected = sum(len(r.expected) for r in acked)
        delivered = sum(len(r.got) for r in acked)
        to_others = [
            t - r.t_sent for r in self.sent.values() for u, t in r.got.items() if u != r.sender
        ]
        acks = [r.t_ack - r.t_sent for r in acked if r.t_ack is not None]
        return {
            "sent": len(self.sent),
            "acked": len(acked),
            **self.counts,
            "expected_deliveries": expected,
            "delivered": delivered,
            "lost": expected - delivered,
            "errors": self.errors,
            "ack_ms": percentiles(acks),
            "delivery_ms": percentiles(to_others),
        }


def percentiles(seconds: list[float]) -> dict[str, float | None]:
    ordered = sorted(seconds)

    def at(q: float) -> float | None:
        if not ordered:
            return None
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p99": at(0.99), "max": at(1.0)}


async def accounts(args: argparse.Namespace, http: aiohttp.ClientSession) -> list[Account]:
    gate = asyncio.Semaphore(args.concurrency)  # argon2 is slow and memory hungry on purpose
    users = [
        Account(http, f"{args.prefix}-{i}@example.com", args.password, f"{args.prefix}-{i}")
        for i in range(args.users)
    ]

    async def ready(i: int) -> None:
        async with gate:
            await users[i].register(args.urls[i % len(args.urls)])

    await asyncio.gather(*(ready(i) for i in range(args.users)))
    return users


def report(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary))
        return
    s = summary
    print(f"sent {s['sent']}  acked {s['acked']}  failed {s['failed']}  retries {s['retries']}")
    print(
        f"delivered {s['delivered']}/{s['expected_deliveries']}  lost {s['lost']}  "
        f"duplicates {s['duplicates']}  disconnects {s['disconnects']}"
    )
    for name, key in (("send -> ack", "ack_ms"), ("send -> delivery", "delivery_ms")):
        p = s[key]
        print(f"{name:<17} p50 {p['p50']} ms  p99 {p['p99']} ms  max {p['max']} ms")
    if s["errors"]:
        print("errors:", s["errors"])


async def run(args: argparse.Namespace) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        print(f"{args.users} users: registering or logging in ...", file=sys.stderr)
        users = await accounts(args, http)
    load = LoadRun(args, users)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, load.stop.set)  # stop sending, then report
    try:
        await load.connect()
        await load.send_all()
        await load.drain()
    finally:
        await load.close()
    summary = load.summary()
    report(summary, args.json)
    bad = summary["lost"] or summary["duplicates"] or summary["sent"] != summary["acked"]
    return 1 if bad else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--urls", default="http://127.0.0.1:8001,http://127.0.0.1:8002")
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--rate", type=float, default=50.0, help="messages per second, in total")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    p.add_argument("--mode", choices=["dm", "room"], default="dm")
    p.add_argument("--room", default="lobby", help="--mode room: the room (made if missing)")
    p.add_argument("--prefix", default="load", help="emails are <prefix>-<i>@example.com")
    p.add_argument("--password", default="load-bot-password")
    p.add_argument("--concurrency", type=int, default=4, help="registrations at a time")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to get a send acked")
    p.add_argument("--drain", type=float, default=10.0, help="seconds to wait for deliveries")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    args.urls = args.urls.split(",")
    if args.users < 2:
        p.error("--users: at least 2")
    return args


def main() -> int:
    try:
        return asyncio.run(run(parse_args()))
    except Fatal as exc:
        print(f"load_bot: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
