"""The user-id and room-id rules are spelled once (chat/models.py); what cannot import them
(the web client's input patterns, docs/protocol.md) is held to them here.  No servers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chat.core.payloads import BlockIn, parse
from chat.core.rooms import check_room_id
from chat.core.sessions import RefreshToken
from chat.errors import ChatError
from chat.models import ROOM_ID_PATTERN, USER_ID_PATTERN, is_dm_room, is_room_id, is_user_id

ROOT = Path(__file__).resolve().parents[2]


def _html_pattern(element_id: str) -> str:
    """An input's ``pattern``, as the ``^...$`` regex a browser applies (``\\-`` is ``-``)."""
    html = (ROOT / "chat" / "web" / "index.html").read_text()
    found = re.search(rf'<input id="{element_id}"[^>]*?pattern="([^"]+)"', html, re.S)
    assert found, f"no pattern on #{element_id}"
    return "^" + found.group(1).replace("\\-", "-") + "$"


def test_the_web_client_checks_ids_by_the_server_rules():
    assert _html_pattern("invite-user") == USER_ID_PATTERN
    assert _html_pattern("create-id") == ROOM_ID_PATTERN


def test_the_protocol_document_states_the_server_rules():
    protocol = (ROOT / "docs" / "protocol.md").read_text()
    assert f"`to` and `user` match `{USER_ID_PATTERN}`" in protocol
    assert f"Ids match `{ROOM_ID_PATTERN}`" in protocol


@pytest.mark.parametrize("text", ["a", "A-b_9", "x" * 64])
def test_user_ids_that_pass(text: str):
    assert is_user_id(text)
    assert RefreshToken.parse(f"{text}.{text}.{text}").user == text


@pytest.mark.parametrize("text", ["", "x" * 65, "a.b", "a:b", "é", "\ud800", "a\n", "\na", None, 7])
def test_user_ids_that_fail(text: object):
    assert not is_user_id(text)
    if isinstance(text, str):
        assert not is_dm_room(f"dm:{text}:zz")
        with pytest.raises(ChatError) as raised:  # as a payload's field, too
            parse({"user": text}, BlockIn)
        assert raised.value.code == "invalid_request"


@pytest.mark.parametrize("text", ["lobby", "a", "0-x_y", "r" * 64])
def test_room_ids_that_pass(text: str):
    assert is_room_id(text) and check_room_id(text) == text


@pytest.mark.parametrize("text", ["", "A", "-a", "_a", "r" * 65, "dm:a:b", "lobby\n", "r\n", None])
def test_room_ids_that_fail(text: object):
    assert not is_room_id(text)
    with pytest.raises(ChatError) as raised:
        check_room_id(text)
    assert raised.value.code == "invalid_room"
    assert raised.value.message == f"room ids match {ROOM_ID_PATTERN}"
