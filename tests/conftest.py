"""Fixtures every tier may use.  Nothing here imports a Redis fixture or starts a process:
the unit tier loads this file too (the real fixtures are in integration/ and e2e/)."""

from __future__ import annotations

import secrets

import pytest


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    return secrets.token_urlsafe(32)
