"""nginx as a local load balancer in front of the chat nodes, for ``python -m devstack --lb``
and tests.

Renders ``devstack/data/nginx/chat.conf.template`` and runs Debian's nginx unprivileged as our
own child process: ``daemon off``, one worker, the pid file, logs and temp files in
directories we own (nothing under /etc, /run or /var).  A
:class:`~devstack.procs.ProcessHandle` like the Redis servers (and told by the kernel to stop
if we die).  Imports the stdlib and :mod:`devstack.procs` only.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from devstack.procs import ProcessHandle

NGINX_ENV = "CHAT_NGINX"
INSTALL_HINT = "install it with `apt-get install nginx` or point CHAT_NGINX at an nginx binary"
TEMPLATE = Path(__file__).resolve().parent / "data" / "nginx" / "chat.conf.template"
LB_COOKIE = "chat_lb"  # the affinity key: picks the node of new sessions and REST calls
NODE_COOKIE = "chat_node"  # the node holding the client's sessions: where their requests go
_PLACEHOLDER = re.compile(r"@[a-z_]+@")
#: One per node: where the requests of the sessions it holds go (one server, so no detour).
_NODE_UPSTREAM = """\
    upstream chat_node_{name} {{
        server {backend};
        keepalive 8;
    }}"""
_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class NginxError(RuntimeError):
    """nginx is missing, its configuration is wrong, or it did not start."""


def find_nginx() -> Path:
    """``$CHAT_NGINX``, else ``nginx`` on PATH, else /usr/sbin/nginx (not on a user's PATH)."""
    override = os.environ.get(NGINX_ENV)
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise NginxError(f"{NGINX_ENV}={override} is not an executable; {INSTALL_HINT}")
        return path
    found = shutil.which("nginx")
    if found:
        return Path(found)
    fallback = Path("/usr/sbin/nginx")
    if fallback.is_file() and os.access(fallback, os.X_OK):
        return fallback
    raise NginxError(f"no nginx found on PATH or at /usr/sbin/nginx; {INSTALL_HINT}")


@functools.cache
def nginx_version(binary: Path) -> tuple[int, ...]:
    """(1, 22, 1) from ``nginx -v`` ("nginx version: nginx/1.22.1", on stderr); () if unknown."""
    out = subprocess.run([str(binary), "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"nginx/(\d+(?:\.\d+)*)", out.stderr + out.stdout)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class LbConfig:
    """What the template needs.  ``backends``: the nodes as ``host:port``."""

    port: int
    backends: Sequence[str]
    run_dir: Path
    log_dir: Path
    max_fails: int = 1
    fail_timeout: int = 10
    connect_timeout: int = 2
    worker_connections: int = 1024

    def values(self) -> dict[str, str]:
        # "localhost" may resolve to ::1 first: listen there too when the host has it.
        listen = [f"127.0.0.1:{self.port}"] + ([f"[::1]:{self.port}"] if _ipv6_loopback() else [])
        # As root the workers would drop to `nobody`, which cannot enter a private temp dir.
        user = "user root;" if os.geteuid() == 0 else "# (not root: no user directive)"
        return {
            "user": user,
            "run_dir": str(self.run_dir),
            "log_dir": str(self.log_dir),
            "lb_cookie": LB_COOKIE,
            "node_cookie": NODE_COOKIE,
            "worker_connections": str(self.worker_connections),
            "connect_timeout": str(self.connect_timeout),
            "listen": _lines(f"listen {addr};" for addr in listen),
            **self._node_values(),
        }

    def _node_values(self) -> dict[str, str]:
        """The upstreams: all nodes (hashed), and one per node (``n<i>``) for its sessions."""
        fails = f"max_fails={self.max_fails} fail_timeout={self.fail_timeout}s"
        names = [f"n{i}" for i in range(len(self.backends))]
        pairs = list(zip(names, self.backends, strict=True))
        return {
            "servers": _lines(f"server {b} {fails};" for b in self.backends),
            "served_nodes": _lines(f"~(^|\\s){re.escape(b)}$ {name};" for name, b in pairs),
            "node_routes": _lines(f"{name} chat_node_{name};" for name in names),
            "node_upstreams": "\n".join(
                _NODE_UPSTREAM.format(name=name, backend=b) for name, b in pairs
            ),
        }


def _lines(lines: Iterable[str], indent: int = 8) -> str:
    return "\n".join(" " * indent + line for line in lines)


def render_config(config: LbConfig, template: Path = TEMPLATE) -> str:
    """The template with every ``@name@`` replaced; an unknown placeholder is an error."""
    if not config.backends:
        raise NginxError("nginx needs at least one backend")
    try:
        text = template.read_text()
    except OSError as exc:
        raise NginxError(f"cannot read the nginx template {template}: {exc}") from exc
    values = config.values()

    def substitute(match: re.Match[str]) -> str:
        name = match.group(0).strip("@")
        if name not in values:
            raise NginxError(f"{template}: unknown placeholder {match.group(0)}")
        return values[name]

    return _PLACEHOLDER.sub(substitute, text)


class NginxProcess(ProcessHandle):
    """nginx on ``port`` in front of ``backends``; everything it writes stays in ``run_dir``
    (``nginx.conf``, ``nginx.pid``, ``tmp/``) and ``log_dir`` (``access.log``, ``error.log``;
    default: ``run_dir``).  ``stop()`` is nginx's fast shutdown (SIGTERM: the master stops
    its worker and exits); a SIGKILL goes to the process group, master and worker."""

    start_error = NginxError
    start_timeout = 10.0
    stop_timeout = 5.0

    def __init__(
        self,
        port: int,
        backends: Sequence[str],
        run_dir: Path,
        *,
        log_dir: Path | None = None,
        binary: Path | None = None,
        **options: int,
    ) -> None:
        run_dir = run_dir.resolve()
        self.config = LbConfig(
            port, list(backends), run_dir, (log_dir or run_dir).resolve(), **options
        )
        super().__init__(f"nginx on port {port}", self.error_log)
        self.binary = binary
        self.conf_path = run_dir / "nginx.conf"

    def __enter__(self) -> NginxProcess:
        return self.start()

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self.config.port

    @property
    def url(self) -> str:
        """The URL to open.  ``localhost``, not 127.0.0.1: clients (aiohttp's cookie jar among
        them) ignore cookies set by a bare IP address, and the affinity is a cookie."""
        return f"http://localhost:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.config.log_dir / "access.log"

    @property
    def error_log(self) -> Path:
        return self.config.log_dir / "error.log"

    def argv(self, *extra: str) -> list[str]:
        binary = self.binary or find_nginx()
        argv = [str(binary), "-p", f"{self.config.run_dir}/", "-c", str(self.conf_path)]
        if nginx_version(binary) >= (1, 19, 5):  # -e: the error log before the config is read
            argv += ["-e", str(self.error_log)]
        return argv + list(extra)

    def cwd(self) -> Path:
        return self.config.run_dir

    def write_config(self) -> None:
        self.binary = self.binary or find_nginx()
        for name in _TEMP_DIRS:
            (self.config.run_dir / "tmp" / name).mkdir(parents=True, exist_ok=True)
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(render_config(self.config))

    def prepare(self) -> None:
        self.write_config()

    def check_config(self) -> str:
        """``nginx -t`` on the rendered file; its output, or NginxError with it."""
        self.write_config()
        out = subprocess.run(self.argv("-t"), capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise NginxError(f"nginx -t failed:\n{out.stderr}{out.stdout}")
        return out.stderr + out.stdout

    def ready(self) -> bool:
        """*Our* nginx listens: its pid file names our child (nginx writes it after binding
        its sockets) and the port accepts a connection."""
        try:
            pid = int((self.config.run_dir / "nginx.pid").read_text().strip())
        except (OSError, ValueError):
            return False
        if pid != self.pid:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False
