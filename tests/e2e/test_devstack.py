"""The development stack's own rules: the process handle every local server uses (on small
Python children, no servers), its entry point, and what it shares with ``chat token``."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chat import cli
from devstack import __main__ as entry
from devstack import run
from devstack.procs import ProcessHandle, StartError, stop_all

ROOT = Path(__file__).resolve().parents[2]

#: Says "ready" once its SIGTERM handling is in place; then waits to be stopped.
CHILD = """
import signal, sys, time
mode = sys.argv[1]
terms = []
if mode == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
elif mode == "second":  # exits on the second SIGTERM only, as a busy valkey may
    def on_term(*_):
        terms.append(1)
        if len(terms) > 1:
            sys.exit(3)
    signal.signal(signal.SIGTERM, on_term)
elif mode == "exit":
    sys.exit(7)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


class Child(ProcessHandle):
    start_timeout = 10.0

    def __init__(self, tmp_path: Path, mode: str = "plain") -> None:
        super().__init__(f"child-{mode}", tmp_path / f"{mode}.log")
        self.mode = mode

    def argv(self) -> list[str]:
        return [sys.executable, "-c", CHILD, self.mode]

    def ready(self) -> bool:
        return self.log_path.exists() and "ready" in self.log_path.read_text()


def test_start_then_stop_is_a_sigterm(tmp_path: Path) -> None:
    child = Child(tmp_path).start()
    assert child.alive and child.pid is not None
    assert child.stop() == -signal.SIGTERM
    assert not child.alive


def test_a_child_deaf_to_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    child = Child(tmp_path, "ignore").start()
    assert child.stop(timeout=0.3) == -signal.SIGKILL


def test_sigterm_is_repeated_only_where_asked(tmp_path: Path) -> None:
    once, again = Child(tmp_path, "second").start(), Child(tmp_path / "b", "second")
    again.repeat_term = True
    again.start()
    stop_all([once, again], timeout=1.2)
    assert again.returncode == 3  # its second SIGTERM came half a second after the first
    assert once.returncode == -signal.SIGKILL


def test_a_child_that_exits_fails_its_start_with_its_log(tmp_path: Path) -> None:
    child = Child(tmp_path, "exit")
    with pytest.raises(StartError, match=r"child-exit exited \(code 7\)"):
        child.start()
    assert not child.alive


def test_pause_and_resume(tmp_path: Path) -> None:
    child = Child(tmp_path).start()
    child.pause()
    assert child.paused and child.alive
    assert child.stop() == -signal.SIGTERM  # the SIGCONT that goes with it lets it act
    assert not child.paused


def test_chat_token_reads_the_secret_devstack_writes() -> None:
    """chat does not import devstack, so the two name the same place twice."""
    assert cli.DEV_SECRET_FILE == run.SECRET_FILE
    assert cli.DEV_DATA_DIR == entry.DATA_DIR


def test_the_entry_point_offers_what_make_run_uses() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "devstack", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "--lb" in out and "--data-dir" in out
    with pytest.raises(SystemExit):  # `chat dev` is gone: argparse refuses the choice
        cli.build_parser().parse_args(["dev"])
