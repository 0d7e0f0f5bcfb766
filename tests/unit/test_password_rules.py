"""The password rules beyond length and the common list: blank, repeated, personal."""

from __future__ import annotations

import pytest
from test_accounts_core import DictStore, OpenLimits, accounts

from chat.core.passwords import PasswordHasher, check_password
from chat.errors import ChatError

FAST = {"memory_cost": 1024, "time_cost": 1}


def refused(password: str, **who: str) -> str:
    with pytest.raises(ChatError) as err:
        check_password(password, **who)
    assert (err.value.code, err.value.status) == ("invalid_password", 400)
    assert password not in err.value.message
    return err.value.message


@pytest.mark.parametrize("password", [" " * 8, "\t" * 3 + " " * 9, "\u3000" * 10, " \n " * 4])
def test_whitespace_only_is_refused(password: str):
    assert "spaces" in refused(password)


@pytest.mark.parametrize("password", ["aaaaaaaa", "Z" * 40, "ü" * 9, "........."])
def test_one_repeated_character_is_refused(password: str):
    assert "repeated" in refused(password)


@pytest.mark.parametrize(
    ("password", "email", "name"),
    [
        ("my alice.smith pass", "Alice.Smith@example.com", "Al"),
        ("2024-ALICE.SMITH!", "alice.smith@example.com", ""),
        ("zorro-is-my-hero", "z@example.com", "Zorro"),
        ("The Green Knight 99", "knight@example.com", "green knight"),
    ],
)
def test_the_own_email_or_name_inside_is_refused(password: str, email: str, name: str):
    assert "your" in refused(password, email=email, name=name)


@pytest.mark.parametrize(
    ("password", "email", "name"),
    [
        ("bob likes long passphrases", "bob@example.com", "Bob"),  # under 4 characters
        ("a rather long passphrase", "alice@example.com", "Alice Smith"),
        ("ab" * 4, "x@example.com", "Zed"),
    ],
)
def test_short_parts_and_unrelated_passwords_pass(password: str, email: str, name: str):
    assert check_password(password, email=email, name=name) is password


async def test_register_checks_the_password_against_the_email_and_the_name():
    hasher = PasswordHasher(**FAST)
    service = accounts(DictStore(), OpenLimits(), hasher)
    try:
        for email, password, name in (
            ("marguerite@example.com", "Marguerite-2024!", None),  # the default name, too
            ("m@example.com", "hello Duchess of Kent", "duchess"),
        ):
            with pytest.raises(ChatError) as err:
                await service.register(email, password, name, client="192.0.2.1")
            assert err.value.code == "invalid_password"
        user = await service.register(
            "m@example.com", "hello Duchess of Kent", "Mo", client="192.0.2.1"
        )
        assert user.name == "Mo"
    finally:
        hasher.close()
