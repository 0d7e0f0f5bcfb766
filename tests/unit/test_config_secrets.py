"""Shipped example secrets cannot start a node; the metrics settings."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
import yaml

from chat import config

ROOT = Path(__file__).resolve().parents[2]
BASE = {"CHAT_SHARDS": "s0=redis://127.0.0.1:7000", "CHAT_CLUSTER": "127.0.0.1:7100"}
GOOD = {**BASE, "CHAT_JWT_SECRET": secrets.token_urlsafe(32)}
SECRET_ENVS = [o.env for o in config.OPTIONS if o.secret]
#: Where a reader finds values to copy: every ``CHAT_...SECRET/PASSWORD/TOKEN=value`` there.
SHIPPED = ["README.md", "Dockerfile", "docs", "examples", "k8s"]
ASSIGNED = re.compile(r"\b(CHAT_\w*(?:SECRET|PASSWORD|TOKEN))=([^\s`'\"]+)")


def example_secret_values() -> list[str]:
    docs = yaml.safe_load_all((ROOT / "k8s" / "secret.example.yaml").read_text())
    return [str(v) for doc in docs if doc for v in doc.get("stringData", {}).values()]


def shipped_assignments() -> list[tuple[str, str]]:
    found = []
    for top in SHIPPED:
        paths = [ROOT / top] if (ROOT / top).is_file() else (ROOT / top).rglob("*")
        for path in paths:
            if path.is_file() and "node_modules" not in path.parts:
                text = path.read_text(errors="replace")
                found += [(m[1], m[2]) for m in ASSIGNED.finditer(text)]
    # Shell expansions, paths of _FILE settings and elisions are no values.
    return [(k, v) for k, v in found if not k.endswith("_FILE") and v[0] not in "$/<." and v]


def problems(environ: dict[str, str]) -> str:
    with pytest.raises(config.ConfigError) as err:
        config.load(environ)
    return str(err.value)


@pytest.mark.parametrize("env", SECRET_ENVS)
def test_the_shipped_example_secrets_are_refused_in_every_secret_setting(env: str):
    values = example_secret_values()
    assert values, "secret.example.yaml holds example values"
    for value in values:
        text = problems({**GOOD, env: value})
        assert f"{env}=<hidden>" in text and "placeholder" in text
        assert value not in text


def test_the_values_shown_in_docs_and_examples_are_refused():
    for env, value in shipped_assignments():
        assert "placeholder" in problems({**GOOD, env: value}), (env, value)


@pytest.mark.parametrize(
    "value",
    [
        "REPLACE_ME_WITH_A_LONG_RANDOM_STRING_OF_40_CHARS",
        "replace me with at least thirty two characters",
        "changeme-changeme-changeme-changeme",
        "Change_Me-0123456789012345678901234567",
        "this-is-an-example-secret-of-enough-length",
        "<your-secret-here-at-least-32-characters>",
        "PLACEHOLDER0123456789012345678901234567",
    ],
)
def test_placeholder_spellings_are_refused(value: str):
    assert "placeholder" in problems({**GOOD, "CHAT_JWT_SECRET": value})


def test_a_placeholder_in_a_mounted_file_is_refused_with_every_other_problem(tmp_path: Path):
    secret_file = tmp_path / "jwt"
    secret_file.write_text(example_secret_values()[0] + "\n")
    env = {**BASE, "CHAT_JWT_SECRET_FILE": str(secret_file), "CHAT_PORT": "70000"}
    text = problems({**env, "CHAT_REDIS_PASSWORD": "change-me"})
    for needle in ("CHAT_JWT_SECRET_FILE=<hidden>", "CHAT_REDIS_PASSWORD=<hidden>", "CHAT_PORT"):
        assert needle in text
    assert "REPLACE" not in text and "change-me" not in text


def test_random_secrets_are_accepted():
    settings = config.load({**GOOD, "CHAT_REDIS_PASSWORD": secrets.token_hex(32)})
    assert settings.jwt_secret == GOOD["CHAT_JWT_SECRET"]


def test_metrics_listen_on_their_own_port_and_a_token_is_a_secret():
    settings = config.load(GOOD)
    assert (settings.metrics_port, settings.metrics_token) == (9090, "")
    token = secrets.token_urlsafe(32)
    settings = config.load({**GOOD, "CHAT_METRICS_PORT": "0", "CHAT_METRICS_TOKEN": token})
    assert (settings.metrics_port, settings.metrics_token) == (0, token)
    assert token not in repr(settings)
    assert "CHAT_METRICS_TOKEN=<hidden>" in problems({**GOOD, "CHAT_METRICS_TOKEN": "short"})
    same = {**GOOD, "CHAT_PORT": "9090"}
    assert "CHAT_METRICS_PORT must differ" in problems(same)
    assert config.load({**same, "CHAT_METRICS_PORT": "0"}).port == 9090
