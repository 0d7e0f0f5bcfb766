"""A running local stack for end-to-end tests: a Redis fleet and chat node processes."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from chat import keys
from chat.core.tokens import TokenService
from devstack.cluster import RedisFleet
from devstack.net import pick_free_ports
from devstack.nodes import ChatNodeProcess, node_env
from devstack.redis_client import LocalRedisError


@dataclass
class Stack:
    fleet: RedisFleet
    nodes: list[ChatNodeProcess]
    secret: str
    issuer: str = "chat"
    tokens: TokenService = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = TokenService(signing_key=self.secret, issuer=self.issuer)

    def url(self, index: int) -> str:
        return self.nodes[index].url

    def token(self, user_id: str, name: str | None = None) -> str:
        return self.tokens.issue(user_id, name or user_id)[0]


def new_user_id(prefix: str = "u") -> str:
    """A fresh id per test, so tests sharing a stack never see each other's traffic."""
    return f"{prefix}{secrets.token_hex(4)}"


#: Per-client-address limits, raised: every test's client is 127.0.0.1 and the limits live in
#: the fleet, which the whole session shares, so one test's sign-ups and wrong passwords would
#: throttle another's.  The tests of these limits set their own.
ADDRESS_LIMITS = {
    "login_ip_rate": "100000",
    "login_ip_fail_limit": "100000",
    "register_ip_rate": "100000",
    "register_ip_burst": "100000",
}


#: Tries of one registration refused as ``unavailable`` (tests registering 100 users at once).
REGISTER_TRIES = 30


@contextlib.contextmanager
def start_stack(
    fleet: RedisFleet, log_dir: Path, secret: str, *, nodes: int = 2, **extra: str
) -> Iterator[Stack]:
    if "shards" in extra:
        forget_shard_set(fleet)
    ports = pick_free_ports(nodes)
    tag = secrets.token_hex(3)  # node ids are unique in a deployment; stacks share a fleet
    # A test may override how the fleet is reached, and the per-address limits.
    options = {**fleet.node_options(), **ADDRESS_LIMITS, **extra}
    env = node_env(fleet.shards_env, fleet.cluster_env, secret, **options)
    procs = [
        ChatNodeProcess(f"{tag}-node{i}", port, env, log_dir / f"node{i}.log")
        for i, port in enumerate(ports)
    ]
    try:
        for proc in procs:
            proc.spawn()
        with ThreadPoolExecutor(len(procs)) as pool:
            list(pool.map(lambda p: p.wait_ready(), procs))
        yield Stack(fleet, procs, secret)
    finally:
        with ThreadPoolExecutor(len(procs)) as pool:
            list(pool.map(lambda p: p.stop(), procs))


def forget_shard_set(fleet: RedisFleet) -> None:
    """A stack given its own CHAT_SHARDS starts as a fresh deployment would: the recorded
    shard set (which wins over CHAT_SHARDS) is an earlier test's, on the shared fleet."""
    for master in fleet.masters():
        with contextlib.suppress(LocalRedisError):  # MOVED from the masters not owning it
            master.command("DEL", keys.shardset_key(), keys.shardset_acks_key())


@dataclass
class User:
    id: str
    name: str
    email: str
    password: str
    token: str


async def register(url: str, name: str | None = None, password: str | None = None) -> User:
    """Register a fresh user through the REST API of the node at ``url``."""
    import aiohttp

    email = f"{new_user_id('t')}@example.com"
    password = password or f"Pw-{secrets.token_hex(8)}"
    body = {"email": email, "password": password, **({"name": name} if name else {})}
    async with aiohttp.ClientSession() as http:
        for _ in range(REGISTER_TRIES):
            async with http.post(f"{url}/api/register", json=body) as r:
                data = await r.json()
            if r.status != 503:
                break
            # A busy hashing pool refuses new passwords at once (registration floods cannot
            # starve logins); a client waits what it is told, as this one does.
            await asyncio.sleep(data["error"]["retry_after"])
        assert r.status == 201, data
    return User(data["user"]["id"], data["user"]["name"], email, password, data["token"])


async def chat_command(stack: Stack, *argv: str) -> tuple[int, str, str]:
    """``python -m chat <argv>`` with the stack's ``CHAT_*`` settings (an operator's command):
    its exit code, stdout and stderr."""
    import os
    import sys

    env = {**os.environ, **stack.nodes[0].env}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chat", *argv, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def service_token(stack: Stack, name: str, *scopes: str) -> tuple[str, str, str]:
    """A new service token made with ``chat tokens create``: ``(token, token id, bot user id)``."""
    argv = ["tokens", "create", "--name", name, *(f"--scope={s}" for s in scopes)]
    code, out, err = await chat_command(stack, *argv)
    assert code == 0, out + err
    token = out.strip()
    created = err.split("created ", 1)[1].split()
    user = next(part.split("=", 1)[1] for part in created if part.startswith("user="))
    return token, created[0], user
