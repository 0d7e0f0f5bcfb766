"""Node configuration: one table of options, read from ``CHAT_*`` variables and CLI flags.

Every option has one environment name and one flag, generated from the same table, so the
Kubernetes ConfigMap, ``chat serve --help`` and this file cannot drift apart.  Values are
validated at start and *all* problems are reported at once.  A secret option ``CHAT_X`` may
instead be read from the file named by ``CHAT_X_FILE`` (a mounted Secret), so that the value
never sits in the environment, where ``ps e`` and crash reporters can read it.

Leaf module: imports nothing of the project.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any
from urllib.parse import urlsplit

SHARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
JWT_ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA")


class ConfigError(ValueError):
    """Configuration is unusable; the message lists every problem found."""


def _shards(text: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for item in _items(text):
        if "@" in item:  # never echoed: a URL is printed (errors, logs), a password must not be
            raise ValueError(
                "a shard URL holds credentials (not shown); set CHAT_REDIS_USERNAME and "
                "CHAT_REDIS_PASSWORD (or CHAT_SHARDS_USERNAME/_PASSWORD) instead"
            )
        name, sep, url = item.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not SHARD_NAME.fullmatch(name):
            raise ValueError(f"{item!r} is not name=redis://host:port")
        parts = urlsplit(url)
        if parts.query:  # redis-py would take ?password=... from it
            raise ValueError(f"shard {name!r}: no ?options in the URL; see CHAT_REDIS_*")
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(f"shard {name!r}: {url!r} is not a redis:// or rediss:// URL")
        if any(name == seen for seen, _ in out):
            raise ValueError(f"shard name {name!r} appears twice")
        out.append((name, url))
    if not out:
        raise ValueError("at least one shard is needed")
    return tuple(out)


def _cluster(text: str) -> tuple[tuple[str, int], ...]:
    out = []
    for item in _items(text):
        if "@" in item:  # never echoed: it may hold a password
            raise ValueError("holds credentials (not shown); set CHAT_REDIS_PASSWORD instead")
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item!r} is not host:port")
        out.append((host, int(port)))
    if not out:
        raise ValueError("at least one cluster seed node is needed")
    return tuple(out)


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _origins(text: str) -> tuple[str, ...]:
    items = _items(text)
    for origin in items:
        parts = urlsplit(origin)
        if origin == "*" or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{origin!r} is not an origin like https://chat.example.com")
        if parts.path not in ("", "/"):
            raise ValueError(f"origin {origin!r} must not have a path")
    return tuple(origin.rstrip("/") for origin in items)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value < 65536:
        raise ValueError("must be 0-65535")
    return value


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise ValueError("must be positive")
        return value

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _secret(text: str) -> str:
    if text and len(text) < 32:
        raise ValueError("must be at least 32 characters (use a random value)")
    return text


#: What the shipped examples (k8s/secret.example.yaml, docs, README) hold where a secret goes,
#: and what people type when told to replace one.  Compared in lowercase letters and digits
#: only, so "REPLACE-ME", "replace_me" and "ReplaceMe" are one; refused in every secret
#: setting, so that an example copied as it is cannot start a node.
PLACEHOLDERS = ("replaceme", "changeme", "placeholder", "example", "yoursecret", "notasecret")


def _refuse_placeholder(text: str) -> None:
    letters = re.sub(r"[^a-z0-9]", "", text.lower())
    if any(marker in letters for marker in PLACEHOLDERS):
        raise ValueError(
            "is the placeholder of an example, not a secret: set a random value "
            "(openssl rand -base64 48)"
        )


def _networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    try:
        return tuple(ip_network(item, strict=False) for item in _items(text))
    except ValueError as exc:
        raise ValueError(f"not a list of addresses or networks: {exc}") from None


def _non_negative(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value < 0:
            raise ValueError("must not be negative")
        return value

    return parse


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


#: Per-user limits of everything a signed-in client can repeat: row -> (per second, burst).
#: Every Socket.IO event and signed-in REST route spends one row (``dm`` and the REST posts
#: spend ``send``), cluster-wide.  What the web client does (bursts of ``watch``/``members``
#: on a room switch, ``sync`` and ``history`` pages after a reconnect) stays far below.
#: ``send`` defaults to ``CHAT_SEND_RATE``/``CHAT_SEND_BURST``, ``read`` to ``CHAT_READ_RATE``/
#: ``CHAT_READ_BURST``; ``CHAT_EVENT_LIMITS`` overrides.
EVENT_LIMITS: dict[str, tuple[float, int]] = {
    "send": (10, 20), "connect": (1, 30), "join": (1, 30), "leave": (1, 30),
    "invite": (1, 30), "create_room": (0.1, 10), "rename": (0.2, 10), "typing": (2, 20),
    "history": (20, 200), "sync": (1, 20), "members": (5, 50), "online": (5, 50),
    "watch": (10, 100), "unwatch": (10, 100), "me": (1, 20), "user": (5, 50),
    "rooms": (2, 30), "logout": (1, 10), "read": (20, 40), "settings": (1, 20),
    "moderate": (2, 30),
    "block": (1, 30), "blocks": (1, 20), "search": (2, 10), "delete_account": (0.1, 5),
}  # fmt: skip


def _event_limits(text: str) -> dict[str, tuple[float, int]]:
    """``row=rate/burst,...`` over the defaults; ``*`` sets every row not named."""
    out: dict[str, tuple[float, int]] = {}
    for item in _items(text):
        name, _, value = (part.strip() for part in item.partition("="))
        rate, _, burst = value.partition("/")
        if name != "*" and name not in EVENT_LIMITS:
            raise ValueError(f"{name!r} is none of *, {', '.join(EVENT_LIMITS)}")
        try:
            out[name] = (float(rate), int(burst))
        except ValueError:
            raise ValueError(f"{item!r} is not event=rate/burst") from None
        if out[name][0] <= 0 or out[name][1] < 1:
            raise ValueError(f"{item!r}: rate and burst must be positive")
    return out


@dataclass(frozen=True)
class Option:
    name: str
    parse: Callable[[str], Any]
    help: str
    default: str | None = None  # None: required
    secret: bool = False  # never echoed back in errors or logs

    @property
    def env(self) -> str:
        return "CHAT_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("host", str, "address to listen on", "0.0.0.0"),  # noqa: S104 - a server listens
    Option("port", _port, "port to listen on", "8080"),
    Option("metrics_port", _port, "port serving only /metrics, on CHAT_HOST (0: none)", "9090"),
    Option("metrics_token", _secret, "bearer token for /metrics (>= 32 chars)", "", secret=True),
    Option("node_id", str, "unique name of this node (default: hostname-pid)", ""),
    Option("shards", _shards, "pub/sub shards: name=redis://host:port,..."),
    Option("cluster", _cluster, "Redis Cluster seed nodes: host:port,..."),
    Option("redis_username", str, "Redis ACL user for shards and cluster (empty: default)", ""),
    Option("redis_password", str, "Redis password for shards and cluster", "", secret=True),
    Option("shards_username", str, "ACL user for the shards, over CHAT_REDIS_USERNAME", ""),
    Option("shards_password", str, "password of the shards' user", "", secret=True),
    Option("cluster_username", str, "ACL user for the cluster, over CHAT_REDIS_USERNAME", ""),
    Option("cluster_password", str, "password of the cluster's user", "", secret=True),
    Option("cluster_tls", _bool, "connect to the Redis Cluster over TLS", "false"),
    Option("redis_ca_file", str, "PEM file of the CAs trusted for Redis TLS (default: system)", ""),
    Option("redis_cert_file", str, "client certificate (PEM) for Redis TLS", ""),
    Option("redis_key_file", str, "private key (PEM, unencrypted) of that certificate", ""),
    Option("jwt_secret", _secret, "JWT secret for HS* (>= 32 characters)", "", secret=True),
    Option("jwt_private_key", str, "PEM file signing RS256/ES256/EdDSA tokens", ""),
    Option("jwt_public_key", str, "PEM file verifying RS256/ES256/EdDSA tokens", ""),
    Option("jwt_issuer", str, "JWT issuer claim", "chat"),
    Option("jwt_algorithm", _choice(*JWT_ALGORITHMS), "JWT algorithm", "HS256"),
    Option("token_ttl", _positive(int), "token lifetime in seconds", "3600"),
    Option("refresh_ttl", _positive(int), "refresh token lifetime (s), renewed by use", "1209600"),
    Option("refresh_rate", _positive(int), "token refreshes per minute per client address", "60"),
    Option("cookie_secure", _bool, "mark the session cookies Secure (HTTPS)", "false"),
    Option("origins", _origins, "allowed browser origins, comma-separated", ""),
    Option("trusted_proxies", _networks, "proxies whose X-Forwarded-For is believed", ""),
    Option("login_fail_limit", _positive(int), "failed logins per account and address", "10"),
    Option("login_ip_fail_limit", _positive(int), "failed logins per address, any account", "30"),
    Option("login_account_fail_limit", _positive(int), "unknown-device failures per account", "20"),
    Option("login_cooldown", _positive(float), "first cool-down in seconds (doubles)", "30"),
    Option("login_cooldown_max", _positive(float), "longest cool-down in seconds", "900"),
    Option("login_ip_rate", _positive(int), "login attempts per minute per client address", "30"),
    Option("register_ip_rate", _positive(int), "registrations per minute per address", "30"),
    Option("register_ip_burst", _positive(int), "registration burst per client address", "30"),
    Option("send_rate", _positive(float), "messages per second per user", "10"),
    Option("send_burst", _positive(int), "message burst per user", "20"),
    Option("read_rate", _positive(float), "read position updates per second per user", "20"),
    Option("read_burst", _positive(int), "read position update burst per user", "40"),
    Option("receipts_max_members", _non_negative(int), "largest room with read receipts", "20"),
    Option("event_limits", _event_limits, "per-user limits: event=rate/burst,... (*: all)", ""),
    Option("search_rate", _positive(float), "user searches per second per user", "2"),
    Option("search_burst", _positive(int), "user search burst per user", "10"),
    Option("blocks_max", _positive(int), "users one user may block", "1000"),
    Option("rooms_per_user", _positive(int), "rooms (not DMs) a user may belong to", "500"),
    Option("rooms_created_per_user", _positive(int), "rooms a user may ever create", "100"),
    Option("room_members_max", _positive(int), "members a room may have (not the lobby)", "10000"),
    Option("connections_per_user", _positive(int), "sockets per user on all nodes", "20"),
    Option("events_in_flight", _positive(int), "events a socket may have unanswered", "32"),
    Option(
        "socket_queue_max",
        _positive(int),
        "bytes queued for a socket that does not read",
        "4194304",
    ),
    Option("max_payload", _positive(int), "largest Engine.IO payload in bytes", "65536"),
    Option("ws_compression", _bool, "accept permessage-deflate (~260 KiB per socket)", "false"),
    Option("text_max", _positive(int), "longest message text in characters", "4000"),
    Option(
        "edit_window_s", _non_negative(int), "seconds a message may be edited (0: always)", "86400"
    ),
    Option("history_max", _non_negative(int), "messages kept per room (0: all)", "10000"),
    Option("history_max_age", _non_negative(float), "seconds messages are kept (0: always)", "0"),
    Option("order_hold_ms", _positive(int), "ms an early message waits for a missing one", "200"),
    Option("replica_wait_ms", _positive(int), "ms a send waits for a replica's ack", "1000"),
    Option("cluster_deadline", _positive(float), "seconds cluster calls retry in a failover", "20"),
    Option(
        "presence_grace", _positive(float), "seconds before a disconnect counts as offline", "5"
    ),
    Option("lease_renew", _positive(float), "seconds between node lease renewals", "5"),
    Option("lease_ttl", _positive(float), "seconds a node lease lasts", "15"),
    Option("hash_workers", _positive(int), "threads hashing passwords (memory: 19 MiB each)", "2"),
    Option("hash_register_workers", _positive(int), "of those, threads for new passwords", "1"),
    Option("hash_register_queue", _non_negative(int), "new passwords waiting for a thread", "8"),
    Option("subscribe_timeout", _positive(float), "seconds to wait for a subscription", "5"),
    Option("drain_seconds", _non_negative(float), "seconds to keep serving after SIGTERM", "2"),
    Option("shutdown_timeout", _positive(float), "seconds allowed for a clean shutdown", "10"),
    Option("log_level", _choice("DEBUG", "INFO", "WARNING", "ERROR"), "log level", "INFO"),
    Option("log_json", _bool, "log one JSON object per line", "false"),
)


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    metrics_port: int
    metrics_token: str
    node_id: str
    shards: tuple[tuple[str, str], ...]
    cluster: tuple[tuple[str, int], ...]
    redis_username: str
    redis_password: str
    shards_username: str
    shards_password: str
    cluster_username: str
    cluster_password: str
    cluster_tls: bool
    redis_ca_file: str
    redis_cert_file: str
    redis_key_file: str
    jwt_secret: str
    jwt_private_key: str
    jwt_public_key: str
    jwt_issuer: str
    jwt_algorithm: str
    token_ttl: int
    refresh_ttl: int
    refresh_rate: int
    cookie_secure: bool
    origins: tuple[str, ...]
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...]
    login_fail_limit: int
    login_ip_fail_limit: int
    login_account_fail_limit: int
    login_cooldown: float
    login_cooldown_max: float
    login_ip_rate: int
    register_ip_rate: int
    register_ip_burst: int
    send_rate: float
    send_burst: int
    read_rate: float
    read_burst: int
    receipts_max_members: int
    event_limits: dict[str, tuple[float, int]]
    search_rate: float
    search_burst: int
    blocks_max: int
    rooms_per_user: int
    rooms_created_per_user: int
    room_members_max: int
    connections_per_user: int
    events_in_flight: int
    socket_queue_max: int
    max_payload: int
    ws_compression: bool
    text_max: int
    edit_window_s: int
    history_max: int
    history_max_age: float
    order_hold_ms: int
    replica_wait_ms: int
    cluster_deadline: float
    presence_grace: float
    lease_renew: float
    lease_ttl: float
    hash_workers: int
    hash_register_workers: int
    hash_register_queue: int
    subscribe_timeout: float
    drain_seconds: float
    shutdown_timeout: float
    log_level: str
    log_json: bool

    @property
    def shard_urls(self) -> dict[str, str]:
        return dict(self.shards)

    def event_limit_table(self) -> dict[str, tuple[float, int]]:
        """Every row: named in ``CHAT_EVENT_LIMITS``, else its ``*``, else the default."""
        every = self.event_limits.get("*")
        table = {
            **EVENT_LIMITS,
            "send": (self.send_rate, self.send_burst),
            "read": (self.read_rate, self.read_burst),
            "search": (self.search_rate, self.search_burst),
        }
        table = {name: every or row for name, row in table.items()}
        return {**table, **{k: v for k, v in self.event_limits.items() if k != "*"}}

    def __repr__(self) -> str:  # keeps the secrets out of tracebacks and logs
        hidden = [o.name for o in OPTIONS if o.secret]
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}
        return f"Settings({shown}, {', '.join(f'{name}=<hidden>' for name in hidden)})"


def load(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build settings from flags (``overrides``: strings, or None where unset) over ``CHAT_*``."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[str, Any] = {}
    problems: list[str] = []
    for opt in OPTIONS:
        raw = overrides.get(opt.name)
        source = opt.flag
        if raw is None:
            raw, source = environ.get(opt.env), opt.env
        if raw is None and opt.secret and environ.get(opt.env + "_FILE"):
            source = opt.env + "_FILE"
            try:
                raw = _read_secret_file(environ[source])
            except OSError as exc:
                problems.append(f"{source}: cannot read the file: {exc.strerror}")
                continue
        if raw is None:
            raw, source = opt.default, "default"
        if raw is None:
            problems.append(f"{opt.env} (or {opt.flag}) is required: {opt.help}")
            continue
        try:
            values[opt.name] = opt.parse(str(raw))
            if opt.secret:
                _refuse_placeholder(str(raw))
        except ValueError as exc:
            # A URL's user:password@ or ?password=, whatever option it was put in.
            shown = "<hidden>" if opt.secret or re.search("[@?]", str(raw)) else repr(raw)
            problems.append(f"{source}={shown}: {exc}")
    if not problems:
        problems += _key_problems(values) + _tls_problems(values) + _port_problems(values)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    if not values["node_id"]:
        values["node_id"] = f"{socket.gethostname()}-{os.getpid()}"
    return Settings(**values)


def _read_secret_file(path: str) -> str:
    """A secret mounted as a file (a Kubernetes Secret volume, a Docker secret): its text
    without the trailing newline that editors and ``echo`` add."""
    with open(path, encoding="utf-8") as f:
        return f.read().rstrip("\r\n")


def _port_problems(values: dict[str, Any]) -> list[str]:
    """The metrics listener is a second socket: on the API's port it could never bind."""
    if values["metrics_port"] and values["metrics_port"] == values["port"]:
        return ["CHAT_METRICS_PORT must differ from CHAT_PORT (or be 0: no metrics listener)"]
    return []


def _tls_problems(values: dict[str, Any]) -> list[str]:
    """Redis TLS files must be readable; a client certificate comes with its key."""
    problems = []
    for name in ("redis_ca_file", "redis_cert_file", "redis_key_file"):
        path = values[name]
        if path and not os.path.isfile(path):
            problems.append(f"CHAT_{name.upper()}: no readable file {path!r}")
    if bool(values["redis_cert_file"]) != bool(values["redis_key_file"]):
        problems.append("CHAT_REDIS_CERT_FILE and CHAT_REDIS_KEY_FILE go together")
    return problems


def _key_problems(values: dict[str, Any]) -> list[str]:
    """HS* algorithms need the shared secret; the others a key pair in PEM files."""
    if values["jwt_algorithm"].startswith("HS"):
        if not values["jwt_secret"]:
            return ["CHAT_JWT_SECRET (or --jwt-secret) is required for " + values["jwt_algorithm"]]
        return []
    problems = []
    for name in ("jwt_private_key", "jwt_public_key"):
        path = values[name]
        if not path or not os.path.isfile(path):
            problems.append(f"CHAT_{name.upper()}: a readable PEM file is required, got {path!r}")
    return problems
