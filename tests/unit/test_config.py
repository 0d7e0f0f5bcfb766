import pytest

from chat import config

GOOD = {
    "CHAT_SHARDS": "s0=redis://127.0.0.1:7000, s1=redis://10.0.0.2:7001",
    "CHAT_CLUSTER": "127.0.0.1:7100,redis-0.redis:6379",
    "CHAT_JWT_SECRET": "x" * 40,
}


def test_loads_from_environment_with_defaults():
    settings = config.load(GOOD)
    assert settings.shards == (("s0", "redis://127.0.0.1:7000"), ("s1", "redis://10.0.0.2:7001"))
    assert settings.cluster == (("127.0.0.1", 7100), ("redis-0.redis", 6379))
    assert settings.port == 8080
    assert settings.jwt_issuer == "chat"
    assert settings.jwt_algorithm == "HS256"
    assert settings.node_id  # defaults to hostname-pid


def test_flags_override_environment():
    settings = config.load(GOOD, overrides={"port": "9001", "node_id": "n7", "host": None})
    assert settings.port == 9001
    assert settings.node_id == "n7"
    assert settings.host == "0.0.0.0"


def test_every_problem_is_reported_at_once_and_the_secret_is_not_echoed():
    env = {
        "CHAT_SHARDS": "s0=http://x:1,s0=redis://y:2",
        "CHAT_PORT": "70000",
        "CHAT_JWT_SECRET": "short-secret-value",
        "CHAT_ORIGINS": "*",
    }
    with pytest.raises(config.ConfigError) as err:
        config.load(env)
    text = str(err.value)
    for needle in ("CHAT_SHARDS", "CHAT_CLUSTER", "CHAT_PORT", "CHAT_JWT_SECRET", "CHAT_ORIGINS"):
        assert needle in text
    assert "short-secret-value" not in text


@pytest.mark.parametrize(
    "shards",
    ["", "redis://a:1", "s0=redis://a:1,s0=redis://b:2", "bad name=redis://a:1", "s0=tcp://a:1"],
)
def test_bad_shard_lists_are_refused(shards):
    with pytest.raises(config.ConfigError, match="CHAT_SHARDS"):
        config.load({**GOOD, "CHAT_SHARDS": shards})


def test_origins_are_normalised_and_wildcards_refused():
    settings = config.load(
        {**GOOD, "CHAT_ORIGINS": "https://chat.example.com/, http://localhost:8001"}
    )
    assert settings.origins == ("https://chat.example.com", "http://localhost:8001")
    with pytest.raises(config.ConfigError, match="CHAT_ORIGINS"):
        config.load({**GOOD, "CHAT_ORIGINS": "https://a.example.com/path"})


def test_repr_hides_the_secret():
    assert GOOD["CHAT_JWT_SECRET"] not in repr(config.load(GOOD))


def test_every_option_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [opt.env for opt in config.OPTIONS if opt.env not in readme]
    assert missing == []


def test_a_secret_can_come_from_a_mounted_file_and_its_text_is_never_echoed(tmp_path):
    secret_file = tmp_path / "jwt"
    secret_file.write_text("s" * 40 + "\n")
    env = {k: v for k, v in GOOD.items() if k != "CHAT_JWT_SECRET"}
    settings = config.load({**env, "CHAT_JWT_SECRET_FILE": str(secret_file)})
    assert settings.jwt_secret == "s" * 40  # the editor's trailing newline is not part of it
    secret_file.write_text("too-short-secret")
    with pytest.raises(config.ConfigError, match="CHAT_JWT_SECRET_FILE") as err:
        config.load({**env, "CHAT_JWT_SECRET_FILE": str(secret_file)})
    assert "too-short-secret" not in str(err.value)
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load({**env, "CHAT_JWT_SECRET_FILE": str(tmp_path / "missing")})


def test_the_environment_value_wins_over_the_file(tmp_path):
    secret_file = tmp_path / "jwt"
    secret_file.write_text("f" * 40)
    settings = config.load({**GOOD, "CHAT_JWT_SECRET_FILE": str(secret_file)})
    assert settings.jwt_secret == GOOD["CHAT_JWT_SECRET"]
