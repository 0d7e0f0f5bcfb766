"""Talking to the local Redis/Valkey servers: how they are protected (:class:`Access`),
short-lived redis-py clients, and cluster health probes.  Uses redis-py and the stdlib.

Every call opens its own client and closes it again, with retries off and a hard timeout:
there is no pool state to go stale across the kill/restart/SIGSTOP fault tests, and a dead
or stopped server fails the call after ``timeout`` seconds rather than after redis-py's
default retries with backoff.  Servers started with a password and/or TLS are reached with
the same ``Access`` they were started with.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.crc import REDIS_CLUSTER_HASH_SLOTS
from redis.driver_info import DriverInfo
from redis.retry import Retry

# Fixed: the default DriverInfo() looks redis-py's version up in importlib.metadata per client.
_DRIVER = DriverInfo(name="chat-local", lib_version="1")


class LocalRedisError(RuntimeError):
    """Base class for errors of the local server helpers."""


class RedisReplyError(LocalRedisError):
    """The server answered with an error (``-ERR ...``, ``-LOADING ...``)."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a local TLS set-up: the CA, and a certificate with its key that the
    servers present, and clients too (the servers ask for client certificates)."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class Access:
    """How local servers are protected, and so how clients reach them: ``username`` names an
    ACL user (the ``default`` user is then disabled), else ``password`` is ``requirepass``;
    ``tls``: TLS only, no plain port.  ``Access()`` is an open server."""

    username: str = ""
    password: str = field(default="", repr=False)
    tls: TlsFiles | None = None

    def client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.username or self.password:
            kwargs.update(username=self.username or None, password=self.password or None)
        if self.tls is not None:
            kwargs.update(ssl=True, ssl_ca_certs=str(self.tls.ca))
            kwargs.update(ssl_certfile=str(self.tls.cert), ssl_keyfile=str(self.tls.key))
        return kwargs

    def server_config(self) -> str:
        """Lines of a config file (never command-line arguments, which ``ps`` shows)."""
        lines = []
        if self.username:
            lines += ["user default off", f"user {self.username} on >{self.password} ~* &* +@all"]
            lines += [f"masteruser {self.username}"]
        elif self.password:
            lines += [f"requirepass {self.password}"]
        if self.password:
            lines += [f"masterauth {self.password}"]  # replicas authenticate to their master
        return "".join(line + "\n" for line in lines)

    def server_args(self, port: int) -> list[str]:
        if self.tls is None:
            return ["--port", str(port)]
        return [
            *("--port", "0", "--tls-port", str(port)),
            *("--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key)),
            *("--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "yes"),
            *("--tls-replication", "yes", "--tls-cluster", "yes"),
        ]

    def cli_args(self) -> list[str]:
        """valkey-cli/redis-cli arguments; the password goes in ``cli_env`` (not ``ps``)."""
        args = ["--user", self.username] if self.username else []
        if self.tls is not None:
            args += ["--tls", "--cacert", str(self.tls.ca)]
            args += ["--cert", str(self.tls.cert), "--key", str(self.tls.key)]
        return args

    def cli_env(self) -> dict[str, str]:
        return {"REDISCLI_AUTH": self.password} if self.password else {}

    def node_options(self) -> dict[str, str]:
        """The chat node's settings (option names) that reach servers of this access."""
        options = {"redis_username": self.username, "redis_password": self.password}
        if self.tls is not None:
            options.update(cluster_tls="true", redis_ca_file=str(self.tls.ca))
            options.update(redis_cert_file=str(self.tls.cert), redis_key_file=str(self.tls.key))
        return {name: value for name, value in options.items() if value}


OPEN = Access()


@contextmanager
def redis_client(
    host: str, port: int, timeout: float = 2.0, *, access: Access = OPEN
) -> Iterator[redis.Redis]:
    """A redis-py client for one probe: no retries, ``timeout`` per connect and per reply.

    redis-py errors raised in the block come out as the builtin TimeoutError/ConnectionError
    (both OSError) or as RedisReplyError, so callers catch ``(OSError, LocalRedisError)``.
    """
    try:
        with redis.Redis(
            host,
            port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # Needed: with retry_on_error=[] alone, the default 10 retries with backoff apply.
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            driver_info=_DRIVER,
            **access.client_kwargs(),
        ) as client:
            yield client
    except redis.TimeoutError as exc:
        raise TimeoutError(str(exc)) from exc
    except (redis.ResponseError, redis.BusyLoadingError) as exc:  # -ERR ..., -LOADING ...
        raise RedisReplyError(str(exc)) from exc
    except (redis.ConnectionError, redis.InvalidResponse) as exc:  # refused, reset, garbled
        raise ConnectionError(str(exc)) from exc


def redis_command(
    host: str, port: int, *args: str | int, timeout: float = 2.0, access: Access = OPEN
) -> Any:
    """Run one command on a fresh connection; the reply as ``Redis.execute_command`` gives it.

    redis-py's response callbacks apply, keyed by the first argument: ``"PING"`` gives True,
    ``"INFO"`` and ``"CLUSTER INFO"`` (one argument) give dicts, ``"CLUSTER", "INFO"`` the
    text.  Raises OSError if the server is down or stopped, RedisReplyError on error replies.
    """
    with redis_client(host, port, timeout, access=access) as client:
        return client.execute_command(*args)  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------------------- cluster probes


def node_role(host: str, port: int, access: Access = OPEN) -> str | None:
    """``master``/``slave`` per ROLE, or None if the node does not answer."""
    try:
        with redis_client(host, port, timeout=1.0, access=access) as client:
            return str(client.role()[0])
    except (OSError, LocalRedisError):
        return None


def _node_problem(client: redis.Redis) -> str | None:
    info = client.cluster("INFO")
    if info.get("cluster_state") != "ok":
        return f"cluster_state={info.get('cluster_state')}"
    if info.get("cluster_slots_ok") != str(REDIS_CLUSTER_HASH_SLOTS):
        return f"cluster_slots_ok={info.get('cluster_slots_ok')}"
    repl = client.info("replication")
    if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
        return f"replica link to master is {repl.get('master_link_status')}"
    return None


def cluster_problem(
    nodes: Iterable[tuple[str, int]], masters: int, access: Access = OPEN
) -> str | None:
    """Why the cluster formed by ``nodes`` is not healthy yet, or None if it is.

    Healthy: every node has cluster_state:ok and cluster_slots_ok:16384, every replica's
    master link is up, all nodes agree on which node owns which slots, and ``masters``
    distinct nodes own slots.
    """
    maps = set()
    for host, port in nodes:
        try:
            with redis_client(host, port, timeout=1.0, access=access) as client:
                problem = _node_problem(client)
                # Parsed CLUSTER NODES: {"ip:port": {"node_id": ..., "slots": [[a, b], ...]}}
                owners = client.cluster("NODES").values()
                maps.add(frozenset((n["node_id"], str(n["slots"])) for n in owners if n["slots"]))
        except (OSError, LocalRedisError) as exc:
            problem = repr(exc)
        if problem:
            return f"{host}:{port}: {problem}"
    if len(maps) != 1:
        return "nodes disagree on the slot map"
    owning = len(next(iter(maps)))
    return None if owning == masters else f"{owning} masters own slots, expected {masters}"


def slot_owner(
    nodes: Iterable[tuple[str, int]], slot: int, access: Access = OPEN
) -> tuple[str, int] | None:
    """(host, port) of the master serving ``slot`` per the first node that answers."""
    for host, port in nodes:
        try:
            with redis_client(host, port, timeout=1.0, access=access) as client:
                ranges = client.cluster("SLOTS")  # no response callback: the raw reply
        except (OSError, LocalRedisError):
            continue
        for entry in ranges if isinstance(ranges, list) else []:
            # [first slot, last slot, [ip, port, id, ...], replicas...]
            match entry:
                case [int(first), int(last), [str(ip), int(owner), *_], *_] if (
                    first <= slot <= last
                ):
                    return ip, owner
    return None


def members_problem(nodes: list[tuple[str, int]], access: Access = OPEN) -> str | None:
    """Why ``nodes`` do not all know exactly each other yet (a node still meeting one, in
    handshake, does not count it), or None once they do."""
    expected = {f"{host}:{port}" for host, port in nodes}
    for host, port in nodes:
        try:
            with redis_client(host, port, timeout=1.0, access=access) as client:
                known = client.cluster("NODES")  # parsed: {"ip:port": {"flags": ..., ...}}
        except (OSError, LocalRedisError) as exc:
            return f"{host}:{port}: {exc!r}"
        met = {address for address, info in known.items() if "handshake" not in info["flags"]}
        if met != expected:
            return f"{host}:{port} knows {sorted(met)}, not {sorted(expected)}"
    return None
