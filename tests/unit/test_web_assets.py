"""Static checks of the web client (no browser): what the CSP allows, what the code may not
do with user data, the vendored Socket.IO client, and how a node serves the files."""

from __future__ import annotations

import configparser
import fnmatch
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "chat" / "web"
VENDORED = WEB / "vendor" / "socket.io.min.js"
VENDORED_SHA256 = "d5d79a35039e860b32bdef4795528b05c2f788d4b2d9dacc913120e2878f7b3f"
OWN_SCRIPTS = sorted(WEB.glob("*.js"))
FORBIDDEN_IN_JS = {
    "innerHTML": re.compile(r"\binnerHTML\b"),
    "outerHTML": re.compile(r"\bouterHTML\b"),
    "insertAdjacentHTML": re.compile(r"\binsertAdjacentHTML\b"),
    "document.write": re.compile(r"\bdocument\s*\.\s*write(ln)?\b"),
    "eval(": re.compile(r"\beval\s*\("),
    "new Function": re.compile(r"\bnew\s+Function\b"),
    "string timer": re.compile(r"\bset(Timeout|Interval)\s*\(\s*['\"`]"),
    "DOMParser": re.compile(r"\bDOMParser\b"),
    "createContextualFragment": re.compile(r"\bcreateContextualFragment\b"),
    "srcdoc": re.compile(r"\bsrcdoc\b"),
    "localStorage token": re.compile(r"localStorage\.setItem\([^)]*token", re.IGNORECASE),
}


class Page(HTMLParser):
    """Everything in index.html that matters to the CSP."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def parsed_index() -> Page:
    page = Page()
    page.feed((WEB / "index.html").read_text(encoding="utf-8"))
    return page


def test_index_has_no_inline_script_or_style():
    page = parsed_index()
    assert page.script_text == []
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts, "the page loads its scripts"
    assert all(attrs.get("src") for attrs in scripts)
    assert not [tag for tag, _ in page.tags if tag == "style"]
    for tag, attrs in page.tags:
        assert "style" not in attrs, f"<{tag}> has a style attribute"
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"<{tag}> has inline handlers {handlers}"
        for name in ("href", "src", "action", "formaction"):
            assert not (attrs.get(name) or "").lower().startswith("javascript:")


def test_every_asset_of_the_page_is_a_same_origin_path():
    page = parsed_index()
    urls = [
        value
        for _, attrs in page.tags
        for name, value in attrs.items()
        if name in ("src", "href", "action", "srcset", "poster", "data") and value
    ]
    assert urls
    for url in urls:
        assert url.startswith("/static/"), url
        assert not url.startswith("//"), url
    text = (WEB / "index.html").read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text


def test_css_loads_nothing_from_elsewhere():
    for css in WEB.glob("*.css"):
        text = css.read_text(encoding="utf-8")
        assert "@import" not in text, css.name
        for url in re.findall(r"url\(([^)]*)\)", text):
            assert url.strip("'\" ").startswith(("/static/", "data:")), (css.name, url)


def test_scripts_never_parse_html_or_evaluate_strings():
    assert OWN_SCRIPTS
    for script in OWN_SCRIPTS:
        text = script.read_text(encoding="utf-8")
        for what, pattern in FORBIDDEN_IN_JS.items():
            assert not pattern.search(text), f"{script.name} uses {what}"


def test_scripts_import_only_local_modules_and_connect_to_their_own_origin():
    for script in OWN_SCRIPTS:
        text = script.read_text(encoding="utf-8")
        for module in re.findall(r"""\bfrom\s+["']([^"']+)["']""", text):
            assert module.startswith("./") and module.endswith(".js"), (script.name, module)
            assert (WEB / module[2:]).is_file(), (script.name, module)
        assert not re.search(r"""["'`](https?:)?//""", text), f"{script.name} names a URL"


def test_links_in_messages_are_built_safely():
    dom = (WEB / "dom.js").read_text(encoding="utf-8")
    assert "new URL(" in dom
    assert '"noopener noreferrer"' in dom
    assert 'url.protocol !== "http:" && url.protocol !== "https:"' in dom


def test_the_vendored_socketio_client_is_the_pinned_release():
    data = VENDORED.read_bytes()
    assert hashlib.sha256(data).hexdigest() == VENDORED_SHA256
    assert data.lstrip().startswith(b"/*!\n * Socket.IO v4.8.4")


def test_every_web_file_is_packaged():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in config["options.package_data"]["chat"].split(",")]
    for path in WEB.rglob("*"):
        if path.is_file():
            relative = path.relative_to(ROOT / "chat").as_posix()
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


# --- served by a node ------------------------------------------------------------------------
