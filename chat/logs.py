"""Logging set-up: plain or one JSON object per line, with tokens scrubbed as a last line of
defence (code never logs them on purpose; a library error message might)."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")


def scrub(text: str) -> str:
    return _JWT.sub("<token>", text)


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


def setup(level: str, as_json: bool, node_id: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(_JsonFormatter())
    else:
        prefix = f"[{node_id}] " if node_id else ""
        handler.setFormatter(
            _PlainFormatter(f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter stays at WARNING unless we debug.
    for name in ("aiohttp.access", "socketio", "engineio"):
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")
