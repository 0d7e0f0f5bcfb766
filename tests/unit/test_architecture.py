"""The import rules of docs/architecture.md, checked on the source (not on conventions)."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

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
        "chat.adapters.resp",
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
        "chat.adapters.resp",
        "chat.adapters.batching",
        "chat.adapters.shards.*",
    ],
    "chat.app": [
        "chat.wiring",
        "chat.config",
        "chat.errors",
        "chat.keys",
        "chat.channels",
        "chat.models",
        "chat.ports",
        "chat.core.*",
        "chat.adapters.*",
    ],
    "chat.wiring": [
        "chat.config",
        "chat.errors",
        "chat.models",
        "chat.ports",
        "chat.core.*",
        "chat.adapters.*",
    ],
    "chat.admin": [
        "chat.config",
        "chat.errors",
        "chat.models",
        "chat.core.*",
        "chat.adapters.*",
    ],
    "chat.admin_tokens": [
        "chat.admin",  # the operator commands' one way to the cluster (operator_cluster)
        "chat.config",
        "chat.errors",
        "chat.models",
        "chat.core.*",
        "chat.adapters.*",
    ],
    "chat.serve": ["chat.app", "chat.config", "chat.adapters.*"],
    "chat.cli": [
        "chat",
        "chat.config",
        "chat.logs",
        "chat.serve",
        "chat.admin",
        "chat.admin_tokens",
        "chat.core.tokens",
    ],
}

#: The development stack (devstack/, not in the wheel): its modules and the devstack modules
#: they may import.  It never imports chat (nor chat devstack): it starts `python -m chat
#: serve` as a process and talks to it over HTTP, as a deployment does.
DEVSTACK_LAYERS = {
    "devstack": [],
    "devstack.procs": [],
    "devstack.net": [],
    "devstack.redis_client": [],
    "devstack.redis_server": ["devstack.procs", "devstack.redis_client"],
    "devstack.tls": ["devstack.redis_client", "devstack.redis_server"],
    "devstack.cluster_cli": ["devstack.procs", "devstack.redis_client", "devstack.redis_server"],
    "devstack.cluster": [
        "devstack.cluster_cli",
        "devstack.net",
        "devstack.procs",
        "devstack.redis_client",
        "devstack.redis_server",
    ],
    "devstack.nodes": ["devstack.net", "devstack.procs"],
    "devstack.nginx": ["devstack.procs"],
    "devstack.run": [
        "devstack.cluster",
        "devstack.net",
        "devstack.nginx",
        "devstack.nodes",
        "devstack.procs",
        "devstack.redis_client",
    ],
    "devstack.__main__": ["devstack.run"],
}

#: Third-party packages that only some modules may import.
CONFINED = {
    "socketio": ["chat.adapters.sio", "chat.adapters.sio_server"],
    "engineio": [
        "chat.adapters.sio",
        "chat.adapters.sio_server",
        "chat.adapters.eio_tuning",
        "chat.adapters.eio_ping",
        "chat.adapters.eio_reader",
    ],
    "aiohttp": [
        "chat.app",
        "chat.serve",
        "chat.adapters.http",
        "chat.adapters.rest",
        "chat.adapters.rest_changes",
        "chat.adapters.rest_moderation",
        "chat.adapters.rest_people",
        "chat.adapters.rest_rooms",
        "chat.cli",
        "chat.adapters.eio_tuning",  # engineio's aiohttp websocket, without compression
    ],
    "redis": [
        "chat.adapters.redis_common",
        "chat.adapters.resp",
        "chat.adapters.cluster.*",
        "chat.adapters.shards.*",
        "devstack.redis_client",
        "devstack.cluster",
    ],
    "cryptography": ["devstack.tls"],  # TLS files for local servers; the server uses jwt's
    "jwt": ["chat.core.tokens"],
    "argon2": ["chat.core.passwords"],
    "emoji": ["chat.core.changes"],
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


def rule_for(module: str, layers: dict[str, list[str]] = LAYERS) -> list[str]:
    matches = [p for p in layers if fnmatch.fnmatchcase(module, p)]
    assert matches, f"{module} has no layer: add it (and to docs/architecture.md)"
    return layers[max(matches, key=len)]  # the most specific pattern wins


@pytest.mark.parametrize(("module", "path"), modules("chat"), ids=str)
def test_chat_modules_import_only_their_allowed_layers(module: str, path: Path):
    permitted = rule_for(module)
    for name in imports(path, module):
        top = name.split(".")[0]
        assert top != "devstack", f"{module} imports {name}: the server never needs devstack"
        if top == "chat":
            assert name == module or allowed(name, permitted), f"{module} imports {name}"
        elif top in CONFINED:
            assert allowed(module, CONFINED[top]), f"{module} may not import {top}"


@pytest.mark.parametrize(("module", "path"), modules("devstack"), ids=str)
def test_devstack_modules_import_only_their_allowed_layers(module: str, path: Path):
    permitted = rule_for(module, DEVSTACK_LAYERS)
    for name in imports(path, module):
        top = name.split(".")[0]
        assert top not in ("chat", "shardring"), f"{module} imports {name}: start a process"
        if top == "devstack":
            assert name == module or allowed(name, permitted), f"{module} imports {name}"
        elif top in CONFINED:
            assert allowed(module, CONFINED[top]), f"{module} may not import {top}"


def test_devstack_is_not_in_the_wheel():
    """The development stack runs from the checkout: setup.cfg packages chat and shardring
    only (the Dockerfile's build checks that the image cannot import it)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    included = cfg["options.packages.find"]["include"].split()
    assert not any(fnmatch.fnmatchcase("devstack", p) for p in included), included
    assert "find_spec('devstack') is None" in (ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize(("module", "path"), modules("shardring"), ids=str)
def test_shardring_stands_alone(module: str, path: Path):
    import sys

    for name in imports(path, module):
        top = name.split(".")[0]
        assert top in ("shardring", "mmh3", "__future__") or top in sys.stdlib_module_names
        assert top not in ("asyncio", "redis", "chat"), f"{module} imports {name}"


#: What the unit tier and the fakes it runs on may not import (tests/README.md): Redis and its
#: fixtures, node processes and their clients, load balancer, browser, subprocesses.  The tier
#: then starts nothing, whatever its tests do.
UNIT_FORBIDDEN = [
    "redis", "redis.*", "redis_fixtures", "stack", "sioclient", "lb_fixtures", "browser",
    "subprocess", "playwright", "playwright.*", "socketio", "chat.local*", "devstack", "devstack.*",
]  # fmt: skip


@pytest.mark.parametrize(
    "path",
    sorted([*(ROOT / "tests" / "unit").glob("*.py"), *(ROOT / "tests" / "fakes").glob("*.py")]),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_unit_tier_starts_nothing(path: Path):
    for name in imports(path, path.stem):
        assert not allowed(name, UNIT_FORBIDDEN), f"{path.name} imports {name}"
