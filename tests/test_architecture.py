"""The import rules of docs/architecture.md, checked on the source (not on conventions)."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: chat modules (glob patterns) and the chat modules they may import.
LAYERS = {
    "chat.config": [],
    "chat.errors": [],
    "chat.keys": [],
    "chat.channels": [],
    "chat.models": [],
    "chat.refcount": [],
    "chat.logs": [],
    "chat": [],
    "chat.core": [],
    "chat.adapters": [],
    "chat.__main__": ["chat.cli"],
    "chat.ports": ["chat.models"],
    "chat.core.*": [
        "chat.config",
        "chat.errors",
        "chat.keys",
        "chat.channels",
        "chat.models",
        "chat.ports",
        "chat.refcount",
        "chat.core.*",
    ],
    "chat.adapters.*": [
        "chat.config",
        "chat.errors",
        "chat.keys",
        "chat.channels",
        "chat.models",
        "chat.ports",
        "chat.refcount",
        "chat.core.*",
        "chat.adapters.*",
    ],
    # The two Redis sides stay apart: a store never reaches a shard, a shard never the cluster.
    "chat.adapters.cluster.*": [
        "chat.config",
        "chat.errors",
        "chat.keys",
        "chat.models",
        "chat.ports",
        "chat.adapters.redis_common",
        "chat.adapters.batching",
        "chat.adapters.cluster.*",
    ],
    "chat.adapters.shards.*": [
        "chat.config",
        "chat.errors",
        "chat.channels",
        "chat.models",
        "chat.ports",
        "chat.refcount",
        "chat.adapters.redis_common",
        "chat.adapters.batching",
        "chat.adapters.shards.*",
    ],
    "chat.app": [
        "chat.config",
        "chat.errors",
        "chat.keys",
        "chat.channels",
        "chat.models",
        "chat.ports",
        "chat.core.*",
        "chat.adapters.*",
    ],
    "chat.cli": ["chat", "chat.config", "chat.logs", "chat.app", "chat.dev", "chat.core.tokens"],
    "chat.local*": ["chat.local*"],
    "chat.dev": ["chat.local*"],
}

#: Third-party packages that only some modules may import.
CONFINED = {
    "socketio": ["chat.adapters.sio"],
    "engineio": ["chat.adapters.sio", "chat.adapters.eio_tuning"],
    "aiohttp": [
        "chat.app",
        "chat.adapters.http",
        "chat.adapters.rest",
        "chat.cli",
        "chat.adapters.eio_tuning",  # engineio's aiohttp websocket, without compression
    ],
    "redis": [
        "chat.adapters.redis_common",
        "chat.adapters.cluster.*",
        "chat.adapters.shards.*",
        "chat.local*",
    ],
    "jwt": ["chat.core.tokens"],
    "argon2": ["chat.core.passwords"],
    "prometheus_client": ["chat.adapters.metrics"],
    "mmh3": ["shardring.*"],
}


def modules(package: str) -> list[tuple[str, Path]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append((".".join(parts), path))
    return found


def imports(path: Path, module: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{module}: use absolute imports"
            for alias in node.names:  # `from chat import keys` imports the module chat.keys
                full = f"{node.module}.{alias.name}"
                names.add(full if is_module(full) else str(node.module))
    return names


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def allowed(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def rule_for(module: str) -> list[str]:
    matches = [p for p in LAYERS if fnmatch.fnmatchcase(module, p)]
    assert matches, f"{module} has no layer in LAYERS: add it (and to docs/architecture.md)"
    return LAYERS[max(matches, key=len)]  # the most specific pattern wins


@pytest.mark.parametrize(("module", "path"), modules("chat"), ids=str)
def test_chat_modules_import_only_their_allowed_layers(module: str, path: Path):
    permitted = rule_for(module)
    for name in imports(path, module):
        top = name.split(".")[0]
        if top == "chat":
            assert name == module or allowed(name, permitted), f"{module} imports {name}"
        elif top in CONFINED:
            assert allowed(module, CONFINED[top]), f"{module} may not import {top}"


@pytest.mark.parametrize(("module", "path"), modules("shardring"), ids=str)
def test_shardring_stands_alone(module: str, path: Path):
    import sys

    for name in imports(path, module):
        top = name.split(".")[0]
        assert top in ("shardring", "mmh3", "__future__") or top in sys.stdlib_module_names
        assert top not in ("asyncio", "redis", "chat"), f"{module} imports {name}"
