"""Token rules that need no server: algorithms fixed by configuration, required claims."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from chat import config
from chat.core.tokens import TokenService, cookie_token
from chat.errors import ChatError


def pem_pair(private_key) -> tuple[str, str]:
    private = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.mark.parametrize(
    ("algorithm", "make_key"),
    [
        ("EdDSA", ed25519.Ed25519PrivateKey.generate),
        ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ],
)
def test_key_pair_algorithms_sign_and_verify_and_refuse_confusion(algorithm, make_key):
    private, public = pem_pair(make_key())
    tokens = TokenService(
        signing_key=private, verifying_key=public, issuer="chat", algorithm=algorithm
    )
    token, claims = tokens.issue("u1", "Ann")
    assert tokens.verify(token) == claims
    # Classic confusion: an HS256 token "signed" with the public key must not pass.
    with pytest.raises(ChatError):
        tokens.verify(hs256_with(public))


def hs256_with(key: str) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(b'{"sub":"u1","iat":1,"exp":9999999999,"jti":"j","iss":"chat"}')
    mac = hmac.new(key.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(mac)}"


def test_key_pair_algorithms_need_their_key_files(tmp_path):
    env = {"CHAT_SHARDS": "s=redis://a:1", "CHAT_CLUSTER": "a:2", "CHAT_JWT_ALGORITHM": "EdDSA"}
    with pytest.raises(config.ConfigError, match="CHAT_JWT_PRIVATE_KEY"):
        config.load(env)
    private, public = pem_pair(ed25519.Ed25519PrivateKey.generate())
    (tmp_path / "k").write_text(private)
    (tmp_path / "k.pub").write_text(public)
    settings = config.load(
        {
            **env,
            "CHAT_JWT_PRIVATE_KEY": str(tmp_path / "k"),
            "CHAT_JWT_PUBLIC_KEY": str(tmp_path / "k.pub"),
        }
    )
    assert settings.jwt_algorithm == "EdDSA" and settings.jwt_secret == ""


def test_hs256_needs_a_secret():
    with pytest.raises(config.ConfigError, match="CHAT_JWT_SECRET"):
        config.load({"CHAT_SHARDS": "s=redis://a:1", "CHAT_CLUSTER": "a:2"})


def test_cookie_header_parsing():
    assert cookie_token("a=1; chat_token=abc.def.ghi; b=2") == "abc.def.ghi"
    assert cookie_token("a=1") is None
    assert cookie_token('chat_token="unterminated') is None
