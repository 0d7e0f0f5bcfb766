"""One process we own by pid: the handle every server of the local stack is (Redis/Valkey,
chat node, nginx), so start, stop, pause and the log are written once.

Stdlib only.  A subclass says what to run (:meth:`ProcessHandle.argv`), how to tell that it
is ready (:meth:`ProcessHandle.ready`), and what to set up before it starts
(:meth:`ProcessHandle.prepare`); the handle spawns it in its own session with its output
appended to ``log_path``, waits for it, and stops it with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Self


class StartError(RuntimeError):
    """A process did not become ready: it exited, or took too long (with its log's tail)."""


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# Orphans: servers live in their own session, so a SIGKILLed parent would leave them running.
# On Linux each child asks the kernel for SIGTERM when its parent dies -- strictly, when the
# *thread* that forked it exits, so spawn from the main thread or another long-lived one.  No
# Popen option does that, hence preexec_fn, which CPython warns may deadlock in the child if
# another thread held a lock (malloc, imports, logging) at fork time.  This one only calls
# prctl, looked up here in the parent, so the child takes no such lock (no dlsym, no import).
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent(parent_pid: int) -> None:
    """preexec_fn, between fork and exec: prctl(PR_SET_PDEATHSIG=1, SIGTERM)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)


def die_with_parent() -> Callable[[], None] | None:
    """The ``preexec_fn`` for a server we spawn: it gets SIGTERM when we die (Linux)."""
    return functools.partial(_die_with_parent, os.getpid()) if _PRCTL else None


def wait_ready(
    proc: subprocess.Popen[bytes] | None,
    ready: Callable[[], bool],
    timeout: float,
    interval: float = 0.02,
) -> str | None:
    """Poll ``ready()`` until it holds (a process offers no event to await): ``None`` then,
    else why it never will: the process exited, or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is None or proc.poll() is not None:
            return f"exited (code {None if proc is None else proc.returncode})"
        if ready():
            return None
        if time.monotonic() > deadline:
            return f"not ready within {timeout} s"
        time.sleep(interval)


class ProcessHandle:
    """A child process in its own session (a terminal's Ctrl-C does not reach it: we stop our
    children ourselves, in order), never daemonized, output appended to ``log_path``."""

    #: Raised by wait_ready(); subclasses name their own.
    start_error: type[Exception] = StartError
    #: Seconds between readiness probes.
    ready_interval = 0.02
    #: Ask the kernel to SIGTERM the child when we die (see _die_with_parent).
    orphan_guard = True
    #: SIGTERM again every half second until it exits (servers that may refuse the first).
    repeat_term = False
    #: wait_ready() stops the process when it fails (else the caller inspects it).
    stop_on_failure = True
    #: Defaults of start() and stop(), in seconds.
    start_timeout = 15.0
    stop_timeout = 10.0

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False  # SIGSTOPped by pause(); health checks skip such processes

    # ------------------------------------------------------------------ what subclasses say

    def argv(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the process serves (polled by wait_ready while it runs)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Before each spawn: directories, configuration files."""

    def child_env(self) -> Mapping[str, str] | None:
        return None  # inherit ours

    def cwd(self) -> Path | None:
        return None

    # ------------------------------------------------------------------ state

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        """True while the process exists (a SIGSTOPped process is alive)."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    # ------------------------------------------------------------------ start

    def spawn(self) -> None:
        """Start the process without waiting; see wait_ready()."""
        if self.alive:
            raise self.start_error(f"{self.name} is already running (pid {self.pid})")
        self.prepare()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        guard = die_with_parent() if self.orphan_guard else None
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd(),
                env=self.child_env(),
                start_new_session=True,
                preexec_fn=guard,  # noqa: PLW1509 - threads: see _die_with_parent
            )

    def wait_ready(self, timeout: float | None = None) -> None:
        timeout = self.start_timeout if timeout is None else timeout
        problem = wait_ready(self.proc, self.ready, timeout, self.ready_interval)
        if problem is not None:
            if self.stop_on_failure:
                self.stop()
            raise self.start_error(f"{self.name} {problem}:\n{log_tail(self.log_path)}")

    def start(self, timeout: float | None = None) -> Self:
        self.spawn()
        self.wait_ready(timeout)
        return self

    # ------------------------------------------------------------------ stop

    def send_stop(self) -> None:
        """SIGTERM (plus SIGCONT so a paused process can act on it); does not wait."""
        if self.alive and self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)  # Popen won't signal an already reaped pid
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, SIGKILL after ``timeout``; returns the exit code once the pid is reaped."""
        stop_all([self], self.stop_timeout if timeout is None else timeout)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL to the process group (the process and any child of it, as nginx's worker)
        and reap: a crash, no shutdown work (for fault tests)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                # Unreaped, so its pid (= the group id) cannot have been reused.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the process hangs with its sockets open (a stall, not a crash)."""
        if self.alive and self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.alive and self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False


def stop_all(handles: Iterable[ProcessHandle], timeout: float = 10.0) -> None:
    """Stop many processes at once: SIGTERM all, wait on one shared deadline, SIGKILL the rest."""
    handles = list(handles)
    pending = [h for h in handles if h.alive]
    for h in pending:
        h.send_stop()
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        resend_at = min(time.monotonic() + 0.5, deadline)
        while time.monotonic() < resend_at and any(h.alive for h in pending):
            time.sleep(0.01)
        pending = [h for h in pending if h.alive]
        # Only where asked: valkey *refuses* SIGTERM in some states (e.g. "Writing initial
        # AOF, can't exit" right after a replica's first sync with the AOF on) and then keeps
        # running as if never asked, while a chat node takes a second one as Ctrl-C twice.
        for h in pending:
            if h.repeat_term:
                h.send_stop()
    for h in handles:
        h.kill()  # SIGKILLs stragglers; reaps everyone
