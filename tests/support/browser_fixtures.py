"""Fixtures and helpers shared by the browser test modules (tests/e2e/conftest.py imports the
fixtures).  Playwright is imported only when a fixture runs: without it the browser modules
skip (``browser.missing_browser``) and the rest of the e2e tier never needs it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest_asyncio
from browser import Chatter, launch, open_chatter, register_via_api

Open = Callable[..., Awaitable[Chatter]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await launch(playwright)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def people(browser) -> AsyncIterator[Open]:
    """Open a person's browser context (``await people(url, name)``); at the end, every page
    must have had no dialog, no uncaught error and no CSP violation."""
    opened: list[Chatter] = []

    async def open_one(url: str, name: str, *, viewport: dict | None = None) -> Chatter:
        chatter = await open_chatter(browser, url, name, viewport)
        opened.append(chatter)
        return chatter

    yield open_one
    for chatter in opened:
        with contextlib.suppress(Exception):  # closed by the test already
            await chatter.context.close()
    problems = [f"{c.name}: {p}" for c in opened for p in c.problems]
    assert not problems, problems


async def signed_in(people: Open, url: str, name: str, **kwargs) -> Chatter:
    from playwright.async_api import expect

    chatter = await register_via_api(await people(url, name, **kwargs))
    await expect(chatter.status).to_have_attribute("data-state", "connected")
    await expect(chatter.testid("room-title")).not_to_be_empty()
    return chatter


async def create_room_via_ui(
    chatter: Chatter, room: str, name: str, *, private: bool = False
) -> None:
    from playwright.async_api import expect

    await chatter.testid("create-open").click()
    await chatter.testid("create-id").fill(room)
    await chatter.testid("create-name").fill(name)
    if private:
        await chatter.testid("create-private").check()
    await chatter.testid("create-submit").click()
    await expect(chatter.testid("create-dialog")).to_be_hidden()
    await expect(chatter.testid("room-title")).to_have_text(name)
    await expect(chatter.room(room)).to_have_attribute("aria-current", "page")
