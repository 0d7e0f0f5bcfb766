"""Logging set-up: plain or one JSON object per line, with tokens, the configured secrets
(Redis passwords) and credentials in Redis URLs scrubbed as a last line of defence (code
never logs them on purpose; a library error message might).  Every record, the libraries'
included, goes through the one handler set here, once; a call site logging in a loop is
rate-limited (``FloodGuard``)."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
#: A service token (``chat/core/service.py``): its id stays readable, its secret does not.
_SERVICE = re.compile(r"(svc_[0-9A-Fa-f]{16}_)[A-Za-z0-9_-]+")
_URL_USERINFO = re.compile(r"(rediss?://)[^\s/@]*@")
_secrets: tuple[str, ...] = ()
#: Given to python-socketio and python-engineio as their loggers (``chat/adapters/sio.py``): a
#: bool there makes them add a StreamHandler of their own, which bypasses ``scrub``.
LIBRARY_LOGGERS = ("socketio.server", "engineio.server")


def scrub(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, "<hidden>")
    text = _SERVICE.sub(r"\1<secret>", _JWT.sub("<token>", text))
    return _URL_USERINFO.sub(r"\1<credentials>@", text)


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry)


class FloodGuard(logging.Filter):
    """At most ``burst`` records from one call site (logger, file, line), then one every
    ``period`` seconds; the next record let through says how many were dropped.  A site
    prints one traceback per ``burst * period`` seconds; its other records in that time
    carry the exception's one-line summary instead.

    Keyed by call site, not by text: libraries format ids into their messages (engineio's
    "Invalid session <sid>"), and a client looping malformed packets makes engineio log one
    traceback each; without this, any client could fill the node's disk and bury real errors.
    """

    def __init__(
        self, burst: int = 10, period: float = 6.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._burst, self._period, self._clock = burst, period, clock
        # site -> [tokens, last seen, dropped since last shown, last traceback shown]
        self._sites: dict[tuple[str, str, int], list[float]] = {}
        self._lock = threading.Lock()  # records also come from worker threads

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.pathname, record.lineno)
        now = self._clock()
        with self._lock:
            site = self._sites.get(key)
            if site is None:
                if len(self._sites) >= 4096:  # call sites are few; bound it anyway
                    self._sites.pop(next(iter(self._sites)))
                site = self._sites[key] = [float(self._burst), now, 0.0, -float("inf")]
            site[0] = min(self._burst, site[0] + (now - site[1]) / self._period)
            site[1] = now
            if site[0] < 1:
                site[2] += 1
                return False
            site[0] -= 1
            dropped, site[2] = int(site[2]), 0.0
            repeat = now - site[3] < self._burst * self._period
            if record.exc_info and not repeat:
                site[3] = now
        notes = [f"{dropped} more like this dropped"] if dropped else []
        if record.exc_info and repeat:
            error = record.exc_info[1]
            notes.append(f"{type(error).__name__}: {str(error)[:200]}; traceback as before")
            record.exc_info = record.exc_text = None
        if notes:
            note = " [" + "; ".join(notes) + "]"
            record.msg = f"{record.msg}{note.replace('%', '%%') if record.args else note}"
        return True


def setup(level: str, as_json: bool, node_id: str = "", secrets: tuple[str, ...] = ()) -> None:
    """``secrets``: values never to appear in a log line, whatever prints them."""
    global _secrets  # noqa: PLW0603 - one logging set-up per process
    _secrets = tuple(s for s in secrets if s)
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(_JsonFormatter())
    else:
        prefix = f"[{node_id}] " if node_id else ""
        handler.setFormatter(
            _PlainFormatter(f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s")
        )
    if level != "DEBUG":  # debugging wants every line
        handler.addFilter(FloodGuard())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter stays at WARNING unless we debug; Socket.IO's at ERROR, as it has always
    # been (its warnings are per client: "Application rejected connection", ...).
    logging.getLogger("aiohttp.access").setLevel(level if level == "DEBUG" else "WARNING")
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.setLevel(level if level == "DEBUG" else "ERROR")
        # Their own handler would print each record a second time, unscrubbed.
        library.handlers.clear()
        library.propagate = True
