"""An echo bot: answers direct messages and @mentions, survives node loss, never double-answers.

    python examples/bots/echo_bot.py --urls http://127.0.0.1:8001,http://127.0.0.1:8002

Credentials: a service token in BOT_TOKEN (made by the operator: `chat tokens create --name
echo --scope bot`; the bot's name is the token's), which never expires and is refused only once
revoked (the bot then stops, status 2).  Without one, a person's account from
--email/--password/--name or BOT_EMAIL/BOT_PASSWORD/BOT_NAME: the bot logs in (registering the
account on the first run) and renews its access token with its refresh token.  Either way it
reconnects by itself: to the next URL when a node is gone, with a renewed token when its access
token expired (the server says so with `session_end` before it disconnects) or is refused, and
with a `sync` after every (re)connect so that messages missed meanwhile are answered too, each
exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import random
import signal
import sys
from typing import Any

import aiohttp
import socketio
from chat_rest import Account, Fatal, ServiceAccount

log = logging.getLogger("echo_bot")
RETRIABLE = {"unavailable", "rate_limited"}
TIMEOUT = 10.0
TEXT_MAX = 4000
PREFIX = "echo: "
SYNC_BATCH = 500  # rooms per `sync` call (the server's limit)


class Cursors:
    """Per room, which messages were handled: every seq up to ``last[room]``, plus the seqs in
    ``above[room]`` handled out of order (live ones that overtook a pending sync answer)."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.above: dict[str, set[int]] = {}

    def start(self, room: str, last: int) -> None:
        if room not in self.last:
            self.last[room], self.above[room] = last, set()

    def first_time(self, room: str, seq: int) -> bool:
        """Mark ``seq`` handled; False if it already was (a duplicate)."""
        self.start(room, seq - 1)  # a room first seen live: it starts here
        if seq <= self.last[room] or seq in self.above[room]:
            return False
        self.above[room].add(seq)
        self.settle(room, self.last[room])
        return True

    def settle(self, room: str, upto: int) -> None:
        """Everything up to ``upto`` is handled (a sync of the room is complete)."""
        last = max(self.last[room], upto)
        above = {seq for seq in self.above[room] if seq > last}
        while last + 1 in above:
            last += 1
            above.remove(last)
        self.last[room], self.above[room] = last, above


class EchoBot:
    def __init__(self, urls: list[str], account: Account | ServiceAccount) -> None:
        self.urls, self.account = urls, account
        self.cursors = Cursors()
        self.outbox: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        self.stopping = account.stopping
        self.online = asyncio.Event()  # connected and caught up: replies may go out
        self.lost = asyncio.Event()
        self.sio: socketio.AsyncClient | None = None
        self.me: dict[str, str] = {}
        self.first_session = True

    # --- connection loop -------------------------------------------------------------------

    async def run(self) -> None:
        replies = asyncio.create_task(self._deliver_replies())
        index, failures = 0, 0
        try:
            while not self.stopping.is_set():
                outcome = await self._connection(self.urls[index % len(self.urls)])
                if outcome == "lost":
                    failures = 0
                else:
                    failures += 1
                    await self._pause(min(10.0, 0.25 * 2 ** (failures // len(self.urls))))
                if outcome != "refused":  # a refused token: log in again on the same node
                    index += 1
        finally:
            replies.cancel()

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay * random.uniform(0.5, 1))

    async def _connection(self, url: str) -> str:
        """One connection, from login to loss: "lost" (it was up), "refused" or "failed"."""
        try:
            token = await self.account.login(url)
        except ConnectionError as exc:
            log.warning("cannot log in at %s: %s", url, exc)
            return "failed"
        sio, refusal, session = self._client()
        try:
            await sio.connect(
                url, auth={"token": token}, transports=["websocket"], wait_timeout=TIMEOUT
            )
        except socketio.exceptions.ConnectionError as exc:
            error = refusal.get("error")
            if isinstance(error, dict) and error.get("code") == "unauthorized":
                log.info("token refused by %s, renewing it", url)  # ServiceAccount: Fatal
                self.account.token = None
                return "refused"
            log.warning("cannot connect to %s: %s", url, exc)
            return "failed"
        self.sio = sio
        try:
            return await self._serve(url, session)
        finally:
            self.online.clear()
            self.sio = None
            await sio.disconnect()

    async def _serve(self, url: str, session: asyncio.Future) -> str:
        """Catch up, then answer live until the connection is lost."""
        try:
            await self._catch_up(await self._first(session))
        except ConnectionError as exc:
            log.warning("catching up on %s failed: %s", url, exc)
            return "failed"
        log.info("ready on %s as %s (%s)", url, self.me["name"], self.me["id"])
        self.online.set()
        with contextlib.suppress(ConnectionError):
            await self._first(asyncio.ensure_future(self.lost.wait()), timeout=None)
        if not self.stopping.is_set():
            log.warning("lost the connection to %s, reconnecting", url)
        return "lost"

    def _client(self) -> tuple[socketio.AsyncClient, dict, asyncio.Future]:
        sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        refusal: dict[str, Any] = {}
        session: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        lost = self.lost = asyncio.Event()
        sio.on("connect_error", lambda data=None: refusal.update(error=data))
        sio.on("disconnect", lambda reason=None: lost.set())
        sio.on("session_end", self._session_end)
        sio.on("session", lambda data: session.done() or session.set_result(self._session(data)))
        sio.on("message", self._handle)
        sio.on("user", lambda user: user["id"] == self.me.get("id") and self.me.update(user))
        return sio, refusal, session

    def _session_end(self, data: dict) -> None:
        """The server ends this socket (a disconnect follows): its token expired or was revoked.
        The next connection renews the token first (or logs in, if the sign-in is over)."""
        log.info("session ended by the server: %s", data.get("code"))
        self.account.token = None

    async def _first(self, awaitable: asyncio.Future, timeout: float | None = TIMEOUT) -> Any:
        """The awaitable's result, unless the connection is lost or the bot stops first
        (python-socketio itself would wait for the whole timeout of a lost call)."""
        lost = asyncio.ensure_future(self.lost.wait())
        stop = asyncio.ensure_future(self.stopping.wait())
        done, _ = await asyncio.wait(
            [awaitable, lost, stop], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in (awaitable, lost, stop):
            task.cancel()
        if awaitable not in done:
            raise ConnectionError("stopping" if stop in done else "lost" if done else "timeout")
        return awaitable.result()

    async def _call(self, event: str, payload: dict) -> dict:
        if self.sio is None:
            raise ConnectionError("not connected")
        return await self._first(asyncio.ensure_future(self.sio.call(event, payload)))

    # --- catching up -----------------------------------------------------------------------

    def _session(self, session: dict) -> dict[str, int]:
        """Runs before any `message` of the connection: rooms new to the bot get a cursor."""
        self.me = {"id": session["user"]["id"], "name": session["user"]["name"]}
        live = {room["id"]: room["last_seq"] for room in session["rooms"]}
        for room, last_seq in live.items():
            # At the first start, history is not the bot's business; a DM room that appeared
            # while the bot was away is answered from its beginning.
            new_dm = room.startswith("dm:") and not self.first_session
            self.cursors.start(room, 0 if new_dm else last_seq)
        self.first_session = False
        return live

    async def _catch_up(self, live: dict[str, int]) -> None:
        behind = [r for r, seq in live.items() if self.cursors.last[r] < seq]
        for start in range(0, len(behind), SYNC_BATCH):
            rooms = {room: self.cursors.last[room] for room in behind[start : start + SYNC_BATCH]}
            ack = await self._call("sync", {"rooms": rooms})
            if not ack["ok"]:
                raise ConnectionError(f"sync refused: {ack['error']}")
            for room, entry in ack["rooms"].items():
                if "error" in entry:
                    log.warning("cannot sync %s: %s", room, entry["error"])
                    continue
                await self._catch_up_room(room, entry, live[room])

    async def _catch_up_room(self, room: str, entry: dict, live_seq: int) -> None:
        for message in entry["messages"]:
            self._handle(message)
        while entry["has_more"] and entry["messages"][-1]["seq"] < live_seq:
            after = entry["messages"][-1]["seq"]
            entry = await self._call("history", {"room": room, "after": after, "limit": 100})
            if not entry["ok"] or not entry["messages"]:
                break
            for message in entry["messages"]:
                self._handle(message)
        self.cursors.settle(room, live_seq)

    # --- answering -------------------------------------------------------------------------

    def _handle(self, message: dict) -> None:
        """Decide, once per message, whether it gets an answer (never awaits: the order of
        the events is kept)."""
        room, seq, sender = message["room"], message["seq"], message["from"]
        if not self.cursors.first_time(room, seq) or sender["id"] == self.me.get("id"):
            return
        text = message.get("text")
        if "kind" in message or text is None:
            return  # an edit, delete or reaction (entries with a seq too), or a deleted message
        if text.startswith(PREFIX.strip()):
            return  # an echo itself: two bots must not ping-pong
        reply = PREFIX + text[: TEXT_MAX - len(PREFIX)]
        cid = "echo-" + hashlib.sha256(f"{room}#{seq}".encode()).hexdigest()[:32]
        if room.startswith("dm:"):
            self.outbox.put_nowait(("dm", {"to": sender["id"], "text": reply, "cid": cid}))
        elif f"@{self.me['name']}".lower() in text.lower():
            self.outbox.put_nowait(("send", {"room": room, "text": reply, "cid": cid}))
        else:
            return
        log.info("answering %s#%d from %s", room, seq, sender["name"])

    async def _deliver_replies(self) -> None:
        while True:
            event, payload = await self.outbox.get()
            await self._deliver(event, payload)

    async def _deliver(self, event: str, payload: dict) -> None:
        """Send until acknowledged; a retry (same cid) after a reconnect stores nothing twice."""
        failures = 0
        while True:
            await self.online.wait()
            try:
                ack = await self._call(event, payload)
            except ConnectionError:
                await asyncio.sleep(0.1)  # the connection loop notices the loss and reconnects
                continue
            if ack["ok"]:
                return
            if ack["error"]["code"] not in RETRIABLE:
                log.warning("%s refused: %s", event, ack["error"])
                return
            failures += 1
            await asyncio.sleep(min(5.0, 0.2 * 2**failures) * random.uniform(0.5, 1))


def parse_args() -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--urls",
        default=env("BOT_URLS", "http://127.0.0.1:8001,http://127.0.0.1:8002"),
        help="chat nodes, comma-separated (tried in turn)",
    )
    parser.add_argument("--email", default=env("BOT_EMAIL", "echo-bot@example.com"))
    parser.add_argument("--password", default=env("BOT_PASSWORD", "a dev passphrase for bots"))
    parser.add_argument("--name", default=env("BOT_NAME", "echo"))
    parser.add_argument(
        "--token-env", default="BOT_TOKEN",
        help="the variable holding a service token (a token in argv would show in `ps`)",
    )  # fmt: skip
    return parser.parse_args()


def env_token(name: str) -> str | None:
    token = os.environ.get(name, "").strip()
    return token or None


async def main() -> int:
    args = parse_args()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:
        service_token = env_token(args.token_env)
        account: Account | ServiceAccount = (
            ServiceAccount(service_token)
            if service_token
            else Account(http, args.email, args.password, args.name)
        )
        bot = EchoBot(args.urls.split(","), account)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, bot.stopping.set)
        try:
            await bot.run()
        except Fatal as exc:
            log.error("%s", exc)
            return 2
    log.info("stopped")
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    sys.exit(asyncio.run(main()))
