"""The client examples, run as real processes against real nodes: the echo bot (and its
failover), the Node.js client, the load bot."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest
from sioclient import Client, connected
from stack import Stack, chat_command, new_user_id, register, service_token, start_stack
from test_accounts import call

from devstack.nodes import ChatNodeProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ECHO_BOT = EXAMPLES / "bots" / "echo_bot.py"
LOAD_BOT = EXAMPLES / "bots" / "load_bot.py"
JS_CLIENT = EXAMPLES / "js-client"
READY = r"ready on (\S+) as (.+) \((\S+)\)$"


class Proc:
    """A subprocess whose output lines are collected as they arrive, so tests await lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.grew = asyncio.Condition()
        assert proc.stdout is not None and proc.stderr is not None
        self.readers = [
            asyncio.create_task(self._read("stdout", proc.stdout)),
            asyncio.create_task(self._read("stderr", proc.stderr)),
        ]

    @classmethod
    async def start(cls, *argv: str, **kwargs) -> Proc:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **kwargs.pop("env", {})}
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **kwargs
        )
        return cls(proc)

    async def _read(self, name: str, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.lines[name].append(raw.decode(errors="replace").rstrip("\n"))
            async with self.grew:
                self.grew.notify_all()
        async with self.grew:
            self.grew.notify_all()

    def output(self) -> str:
        return "\n".join(["--- stdout", *self.lines["stdout"], "--- stderr", *self.lines["stderr"]])

    async def line(self, pattern: str, stream: str = "stderr", timeout: float = 20) -> re.Match:
        """The first line (since the start) matching ``pattern``; awaited if not there yet."""
        regex, seen = re.compile(pattern), 0
        try:
            async with asyncio.timeout(timeout), self.grew:
                while True:
                    lines = self.lines[stream]
                    for text in lines[seen:]:
                        if match := regex.search(text):
                            return match
                    seen = len(lines)
                    if all(reader.done() for reader in self.readers):
                        break
                    await self.grew.wait()
        except TimeoutError:
            pass
        raise AssertionError(f"no line matching {pattern!r}:\n{self.output()}")

    def count(self, pattern: str, stream: str = "stderr") -> int:
        return sum(1 for text in self.lines[stream] if re.search(pattern, text))

    async def wait(self, timeout: float = 30) -> int:
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await asyncio.gather(*self.readers)
        return code

    async def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then the exit code (killed if it overstays, and then the test fails)."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await self.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


@contextlib.asynccontextmanager
async def echo_bot(
    urls: list[str], token: str | None = None, name: str | None = None
) -> AsyncIterator[tuple[Proc, str, str]]:
    """A running echo bot and its name and user id, once it is ready: with the service token
    ``token`` (whose bot is called ``name``), else with a fresh account."""
    if token is not None:
        assert name is not None
        env = {"BOT_TOKEN": token}
    else:
        name = new_user_id("echo")
        password = f"Pw-{secrets.token_hex(6)}"  # never the name: the password rules refuse it
        env = {"BOT_EMAIL": f"{name}@example.com", "BOT_PASSWORD": password, "BOT_NAME": name}
    bot = await Proc.start(sys.executable, str(ECHO_BOT), "--urls", ",".join(urls), env=env)
    try:
        ready = await bot.line(READY)
        assert ready[1] == urls[0], bot.output()
        yield bot, name, ready[3]
    finally:
        bot.kill()
        await bot.proc.wait()


async def reply_from(client: Client, bot: Proc, bot_id: str) -> dict:
    try:
        while True:
            message = await client.next("message")
            if message["from"]["id"] == bot_id:
                return message
    except TimeoutError:
        raise AssertionError(f"no answer from the bot:\n{bot.output()}") from None


async def dm(client: Client, to: str, text: str) -> dict:
    ack = await client.call("dm", {"to": to, "text": text})
    assert ack["ok"], ack
    return ack["message"]


def import_echo_bot(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ECHO_BOT.parent))  # it imports chat_rest from there
    return importlib.import_module("echo_bot")


def test_echo_bot_cursors_count_each_message_once(monkeypatch):
    cursors = import_echo_bot(monkeypatch).Cursors()
    cursors.start("r", 5)  # `session`: the live point is 5
    assert not cursors.first_time("r", 5)
    assert cursors.first_time("r", 8)  # a live message overtakes the sync answer (6, 7)
    assert [cursors.first_time("r", seq) for seq in (6, 7, 8, 7)] == [True, True, False, False]
    assert (cursors.last["r"], cursors.above["r"]) == (8, set())
    cursors.start("r", 0)  # a later session never rewinds a known room
    assert not cursors.first_time("r", 3)
    assert cursors.first_time("new", 4) and not cursors.first_time("new", 3)  # first seen live
    cursors.start("t", 0)
    assert cursors.first_time("t", 50)  # history before 50 was trimmed
    cursors.settle("t", 60)  # the room's sync is complete up to its live point
    assert (cursors.last["t"], cursors.above["t"]) == (60, set())


async def test_echo_bot_decides_once_per_message_and_never_answers_itself(monkeypatch):
    module = import_echo_bot(monkeypatch)
    bot = module.EchoBot(["http://unused"], module.Account(None, "e@example.com", "pw"))
    bot.me = {"id": "bot1", "name": "Echo Bot"}
    ann, me = {"id": "ann", "name": "Ann"}, {"id": "bot1", "name": "Echo Bot"}
    for seq, room, sender, text in [
        (1, "dm:ann:bot1", ann, "hello"),
        (1, "dm:ann:bot1", ann, "hello"),  # the same message again (sync after live)
        (2, "dm:ann:bot1", me, "echo: hello"),  # its own
        (3, "dm:ann:bot1", ann, "echo: hi"),  # another bot's echo
        (7, "lobby", ann, "no mention"),
        (8, "lobby", ann, "hey @echo BOT"),
    ]:
        bot._handle({"room": room, "seq": seq, "from": sender, "text": text})
    replies = [bot.outbox.get_nowait() for _ in range(bot.outbox.qsize())]
    assert [(event, p.get("to", p.get("room")), p["text"]) for event, p in replies] == [
        ("dm", "ann", "echo: hello"),
        ("send", "lobby", "echo: hey @echo BOT"),
    ]
    assert len({p["cid"] for _, p in replies}) == 2
    bot._handle({"room": "lobby", "seq": 8, "from": ann, "text": "hey @echo BOT"})
    assert bot.outbox.empty()


async def test_echo_bot_answers_no_edit_delete_reaction_or_deleted_message(monkeypatch):
    module = import_echo_bot(monkeypatch)
    bot = module.EchoBot(["http://unused"], module.Account(None, "e@example.com", "pw"))
    bot.me = {"id": "bot1", "name": "Echo Bot"}
    ann, room = {"id": "ann", "name": "Ann"}, "dm:ann:bot1"
    target = {"target": "1.x", "target_seq": 1}
    for entry in (
        {"seq": 2, "kind": "edit", "text": "hello again", **target},
        {"seq": 3, "kind": "react", "emoji": "👍", "on": True, **target},
        {"seq": 4, "kind": "delete", **target},
        {"seq": 5, "deleted": True},  # a deleted message in a history page: no text
    ):
        bot._handle({"room": room, "from": ann, "ts": 1, "id": "x", **entry})
    assert bot.outbox.empty()
    bot._handle({"room": room, "seq": 6, "from": ann, "text": "hi"})
    assert bot.outbox.get_nowait()[1]["text"] == "echo: hi"


@pytest.mark.parametrize("credential", ["service token", "password"])
async def test_echo_bot_answers_dms_and_lobby_mentions_only(stack: Stack, credential: str):
    user = await register(stack.url(1))
    token, name = None, None
    if credential == "service token":  # made as the operator makes one, with the CLI
        name = new_user_id("echo")
        token, _, _ = await service_token(stack, name, "bot")
    async with (
        echo_bot([stack.url(0), stack.url(1)], token, name) as (bot, name, bot_id),
        connected(stack.url(1), user.token) as client,
    ):
        sent = await dm(client, bot_id, "ping 1")
        reply = await reply_from(client, bot, bot_id)
        assert (reply["room"], reply["text"]) == (sent["room"], "echo: ping 1")

        await dm(client, bot_id, "echo: an echo is never answered (no ping-pong between bots)")
        for text in ("no mention: no answer", f"hi @{name.upper()}, are you there?"):
            ack = await client.call("send", {"room": "lobby", "text": text})
            assert ack["ok"], ack
        reply = await reply_from(client, bot, bot_id)
        expected = ("lobby", f"echo: hi @{name.upper()}, are you there?")
        assert (reply["room"], reply["text"]) == expected
        assert client.pending("message") == []
        assert await bot.stop() == 0, bot.output()
        assert bot.count(r"answering ") == 2, bot.output()


async def test_echo_bot_with_a_revoked_service_token_stops(stack: Stack):
    name = new_user_id("echo")
    token, ident, created_id = await service_token(stack, name, "bot")
    user = await register(stack.url(0))
    async with (
        echo_bot([stack.url(1), stack.url(0)], token, name) as (bot, _, bot_id),
        connected(stack.url(0), user.token) as client,
    ):
        assert bot_id == created_id
        await dm(client, bot_id, "ping")
        assert (await reply_from(client, bot, bot_id))["text"] == "echo: ping"
        code, out, err = await chat_command(stack, "tokens", "revoke", ident)
        assert code == 0, out + err
        await bot.line("session ended by the server: token_revoked")
        assert await bot.wait() == 2, bot.output()
        await bot.line("the service token was refused")


def rotate_secret(node: ChatNodeProcess) -> None:
    """Restart the node with a new signing secret: tokens issued before are refused there."""
    node.stop()
    node.env["CHAT_JWT_SECRET"] = secrets.token_urlsafe(32)
    node.start()


async def test_echo_bot_fails_over_logs_in_again_and_answers_a_dm_sent_meanwhile_once(
    redis_fleet, tmp_path, jwt_secret
):
    with start_stack(redis_fleet, tmp_path, jwt_secret, nodes=2) as stack:
        urls = [stack.url(0), stack.url(1)]
        async with echo_bot(urls) as (bot, _, bot_id):
            # The bot is on node 0.  Node 1 gets a new secret: the bot's token is refused there.
            await asyncio.to_thread(rotate_secret, stack.nodes[1])
            user = await register(stack.url(1))
            async with connected(stack.url(1), user.token) as client:
                room = (await dm(client, bot_id, "before"))["room"]
                assert (await reply_from(client, bot, bot_id))["text"] == "echo: before"

                stopping = asyncio.create_task(asyncio.to_thread(stack.nodes[0].stop))
                await bot.line(f"lost the connection to {urls[0]}")
                await dm(client, bot_id, "while away")
                assert (await reply_from(client, bot, bot_id))["text"] == "echo: while away"
                await stopping
                await bot.line(f"token refused by {urls[1]}")
                await bot.line(rf"ready on {urls[1]} ")

                await dm(client, bot_id, "after")
                assert (await reply_from(client, bot, bot_id))["text"] == "echo: after"
                status, page, _ = await call(
                    "GET", f"{urls[1]}/api/rooms/{room}/messages?limit=100", token=user.token
                )
            assert status == 200, page
            texts = [m["text"] for m in page["messages"]]
            assert texts == [
                *("before", "echo: before", "while away", "echo: while away"),
                *("after", "echo: after"),
            ]
            assert await bot.stop() == 0, bot.output()
            answered = re.findall(r"answering (\S+)", "\n".join(bot.lines["stderr"]))
            assert sorted(answered) == [f"{room}#1", f"{room}#3", f"{room}#5"], bot.output()


@pytest.fixture(scope="module")
def js_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Node.js example installed (`npm ci`) into a temporary copy."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("NODE.JS OR NPM IS NOT INSTALLED: the js-client example is NOT tested")
    dest = tmp_path_factory.mktemp("js-client")
    for name in ("package.json", "package-lock.json", "client.mjs"):
        shutil.copy(JS_CLIENT / name, dest / name)
    command = [npm, "ci", "--no-audit", "--no-fund"]
    done = subprocess.run(command, cwd=dest, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return dest


async def test_js_client_registers_sends_and_prints_what_arrives(stack: Stack, js_client: Path):
    python_user = await register(stack.url(0))
    js_name, hello, answer = new_user_id("js"), f"hello {secrets.token_hex(3)}", "hi, JS"
    email, password = f"{js_name}@example.com", f"Pw-{secrets.token_hex(6)}"  # a new account
    argv = ["--url", stack.url(1), "--email", email, "--password", password, "--name", js_name]
    argv += ["--text", hello, "--count", "2"]
    async with connected(stack.url(0), python_user.token) as client:
        await client.next("session")
        js = await Proc.start("node", "client.mjs", *argv, cwd=js_client)
        try:
            try:
                message = await client.next("message")
            except TimeoutError:
                raise AssertionError(f"nothing from the JS client:\n{js.output()}") from None
            got = (message["room"], message["from"]["name"], message["text"])
            assert got == ("lobby", js_name, hello)
            assert (await client.call("send", {"room": "lobby", "text": answer}))["ok"]
            assert await js.wait() == 0, js.output()
        finally:
            js.kill()
    time = r"\[\d\d:\d\d:\d\d\]"
    assert re.fullmatch(rf"{time} {js_name}: {hello}", js.lines["stdout"][0]), js.output()
    assert re.fullmatch(rf"{time} {python_user.name}: {answer}", js.lines["stdout"][1]), js.output()


async def test_js_client_runs_as_a_bot_on_a_service_token(stack: Stack, js_client: Path):
    name = new_user_id("jsbot")
    token, _, bot_id = await service_token(stack, name, "bot")
    python_user = await register(stack.url(0))
    hello = f"beep {secrets.token_hex(3)}"
    async with connected(stack.url(0), python_user.token) as client:
        await client.next("session")
        js = await Proc.start(
            "node", "client.mjs", "--url", stack.url(1), "--text", hello, "--once",
            cwd=js_client, env={"BOT_TOKEN": token},
        )  # fmt: skip
        try:
            try:
                message = await client.next("message")
            except TimeoutError:
                raise AssertionError(f"nothing from the JS client:\n{js.output()}") from None
            assert (message["from"]["id"], message["from"]["name"], message["text"]) == (
                bot_id, name, hello,
            )  # fmt: skip
            assert await js.wait() == 0, js.output()
        finally:
            js.kill()
    assert f"as {name} ({bot_id})" in "\n".join(js.lines["stderr"]), js.output()


@pytest.mark.parametrize("mode", ["dm", "room"])
async def test_load_bot_smoke_run_loses_nothing(stack: Stack, mode: str):
    argv = [sys.executable, str(LOAD_BOT), "--urls", f"{stack.url(0)},{stack.url(1)}"]
    argv += ["--users", "6", "--rate", "10", "--duration", "2", "--mode", mode]
    argv += ["--room", new_user_id("r"), "--prefix", new_user_id("load"), "--json"]
    load = await Proc.start(*argv)
    try:
        code = await load.wait(60)
    finally:
        load.kill()
    assert code == 0, load.output()
    summary = json.loads(load.lines["stdout"][-1])
    recipients = 2 if mode == "dm" else 6
    assert summary["sent"] == summary["acked"] == 20, summary
    assert summary["lost"] == summary["duplicates"] == summary["failed"] == 0, summary
    assert summary["delivered"] == summary["expected_deliveries"] == 20 * recipients, summary
    assert summary["delivery_ms"]["p99"] is not None, summary


async def test_dm_pair_reuses_its_two_accounts_on_every_run(stack: Stack):
    """The smallest example leaves no new account behind when it runs again: the second run
    signs in to the accounts the first one registered, and the DM goes on in the same room."""
    argv = [
        sys.executable,
        str(EXAMPLES / "dm_pair.py"),
        "--urls",
        f"{stack.url(0)},{stack.url(1)}",
    ]
    seen = []
    for _ in range(2):
        pair = await Proc.start(*argv)
        try:
            assert await pair.wait(60) == 0, pair.output()
        finally:
            pair.kill()
        out = "\n".join(pair.lines["stdout"])
        ids = re.findall(r"(?:Alice|Bob) \((\S+)\) is on ", out)
        received = re.search(
            r"Bob received from Alice: 'hello from the other node' \(seq (\d+)\)", out
        )
        assert len(ids) == 2 and received, pair.output()
        seen.append((ids, int(received[1])))
    (first_ids, first_seq), (again_ids, again_seq) = seen
    assert again_ids == first_ids
    assert again_seq == first_seq + 1
