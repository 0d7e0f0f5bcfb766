"""Helpers for the browser tests: Debian's Chromium driven by Python Playwright.

Never a downloaded browser (no ``playwright install``): the system's ``/usr/bin/chromium``, or
the one named by ``CHAT_CHROMIUM``.  Without Playwright or Chromium the browser tests skip
with a reason that says how to install them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot.png"
INSTALL_HINT = (
    "install them with: apt-get install -y chromium && "
    ".venv/bin/pip install playwright==1.65.2 (never `playwright install`: "
    "the tests use the system's Chromium)"
)
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 15_000  # default for expect() and locator waits

# Runs before the page's own scripts: records alert/confirm/prompt instead of showing them, so
# a test can assert that nothing tried to run them (an XSS payload would).
RECORD_ALERTS = """
window.__alerts = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (...args) => { window.__alerts.push([name, ...args.map(String)]); };
}
"""


def chromium_path() -> str | None:
    wanted = os.environ.get("CHAT_CHROMIUM")
    if wanted:
        return wanted if Path(wanted).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return f"BROWSER TESTS SKIPPED: Python playwright is not installed; {INSTALL_HINT}"
    if chromium_path() is None:
        where = os.environ.get("CHAT_CHROMIUM") or "/usr/bin/chromium (or chromium on PATH)"
        return f"BROWSER TESTS SKIPPED: no Chromium at {where}; {INSTALL_HINT}"
    return None


async def launch(playwright: Any) -> Any:
    return await playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, args=LAUNCH_ARGS
    )


def tag() -> str:
    return secrets.token_hex(3)


@dataclass
class Chatter:
    """One person in one browser context, on one node."""

    context: Any
    page: Any
    url: str
    name: str
    email: str
    password: str
    id: str = ""
    problems: list[str] = field(default_factory=list)

    # --- locators -------------------------------------------------------------------------------

    def testid(self, value: str) -> Any:
        return self.page.get_by_test_id(value)

    @property
    def status(self) -> Any:
        return self.testid("connection-status")

    @property
    def composer(self) -> Any:
        return self.testid("composer-input")

    @property
    def messages(self) -> Any:
        return self.page.locator('[data-testid="message-list"] > [data-testid="message"]')

    def message(self, text: str) -> Any:
        """The message item whose text is exactly ``text``."""
        return self.messages.filter(
            has=self.page.get_by_test_id("message-text").get_by_text(text, exact=True)
        )

    def member(self, user_id: str) -> Any:
        return self.page.locator(f'[data-testid="member"][data-user-id="{user_id}"]')

    def room(self, room_id: str) -> Any:
        return self.page.locator(f'[data-testid="room-item"][data-room="{room_id}"]')

    # --- actions --------------------------------------------------------------------------------

    async def send(self, text: str) -> None:
        await self.composer.fill(text)
        await self.composer.press("Enter")

    async def seqs(self) -> list[int]:
        values = await self.messages.evaluate_all("(items) => items.map((li) => li.dataset.seq)")
        return [int(v) for v in values]

    async def texts(self) -> list[str]:
        return await self.page.locator(
            '[data-testid="message-list"] [data-testid="message-text"]'
        ).all_inner_texts()

    async def alerts(self) -> list[Any]:
        return await self.page.evaluate("window.__alerts")

    async def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), animations="disabled")
        return path


async def open_chatter(browser: Any, url: str, name: str, viewport: dict | None = None) -> Chatter:
    """A fresh browser context at ``url``, not signed in, with problems recorded: dialogs,
    uncaught errors and Content-Security-Policy violations."""
    context = await browser.new_context(
        viewport=viewport or DESKTOP,
        is_mobile=viewport == PHONE,
        has_touch=viewport == PHONE,
        locale="en-GB",
        timezone_id="Europe/Berlin",
    )
    context.set_default_timeout(WAIT_MS)
    await context.add_init_script(RECORD_ALERTS)
    page = await context.new_page()
    chatter = Chatter(
        context,
        page,
        url,
        name,
        f"{re.sub(r'[^a-z0-9]', '', name.lower()) or 'user'}.{tag()}@example.com",
        f"Pw-{secrets.token_hex(8)}",
    )

    watch_page(chatter, page)
    return chatter


def watch_page(chatter: Chatter, page: Any) -> None:
    """Record what must never happen on the page: a dialog (alert & co.), an uncaught error,
    a Content-Security-Policy violation."""

    async def dialog(d: Any) -> None:
        chatter.problems.append(f"dialog {d.type}: {d.message}")
        await d.dismiss()

    def console(message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            chatter.problems.append(f"CSP violation: {text}")

    page.on("dialog", dialog)
    page.on("console", console)
    page.on("pageerror", lambda error: chatter.problems.append(f"page error: {error}"))


async def register_via_api(chatter: Chatter) -> Chatter:
    """Register through REST in the chatter's context (it gets the session cookie), then open
    the page: the fast way in for tests that are not about signing in."""
    response = await chatter.context.request.post(
        chatter.url + "/api/register",
        data={"email": chatter.email, "password": chatter.password, "name": chatter.name},
    )
    assert response.status == 201, await response.text()
    chatter.id = (await response.json())["user"]["id"]
    await chatter.page.goto(chatter.url)
    return chatter


async def rest(chatter: Chatter, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A REST call with the chatter's session cookie."""
    response = await chatter.context.request.fetch(
        chatter.url + path, method=method, data=body if body is not None else None
    )
    text = await response.text()
    return response.status, (json.loads(text) if text else None)
