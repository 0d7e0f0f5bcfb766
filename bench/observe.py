"""What a benchmark run moved, beside its CPU totals: Redis commands per message (``INFO
commandstats``, reset when the measured window opens) and the first node's heaviest functions
(py-spy over the window).  The shared harness is not changed, so the window is learnt from the
load generator: the harness finds ``node`` on ``PATH``, where ``observing()`` puts a shim that
runs the real one, passes everything through and copies the ``#phase`` lines (and ``--label``,
the run id) into a file that a watcher thread polls."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PHASES = "CHAT_BENCH_PHASES"
# -S: no site-packages, so every `node` the harness starts (servers of peer-node too) pays
# ~10 ms of Python start-up instead of ~40 ms.  Signals reach the generator twice when the
# harness signals the whole group (harmless); forwarding covers a signal to the shim alone.
SHIM = """#!{python} -S
import os, signal, subprocess, sys
real, args = os.environ["CHAT_BENCH_REAL_NODE"], sys.argv[1:]
if not any(a.endswith("loadgen.js") for a in args):
    os.execv(real, [real, *args])  # servers, conformance: plain node, same pid
child = subprocess.Popen([real, *args], stderr=subprocess.PIPE)
for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, lambda signum, _: child.send_signal(signum))
with open(os.environ["{phases}"], "a", buffering=1) as phases:
    phases.write("label " + (args[args.index("--label") + 1] if "--label" in args[:-1] else "") + "\\n")
    for raw in child.stderr:  # unchanged to the harness, which parses these lines itself
        sys.stderr.buffer.write(raw)
        sys.stderr.buffer.flush()
        if raw.startswith(b"#phase "):
            phases.write(raw.decode())
code = child.wait()
if code < 0:  # killed by a signal: die of the same one, so the harness sees what happened
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""
SPY_RATE = 50  # samples/s: enough for the top functions of a 10 s window, little CPU taken
# Inclusive time counts only the frames below the event loop's (what the loop runs): the ones
# above it (entry point, loop) are on nearly every sample and say nothing.  A sample whose own
# frame is the loop's is time in the loop's C code (uvloop: its I/O and callbacks' plumbing).
LOOP = re.compile(r"(Runner\.run|BaseEventLoop\.\w+|Handle\._run) \(asyncio/")
LIBRARIES = ("chat", "socketio", "engineio", "aiohttp", "redis", "msgspec", "asyncio", "jwt")
# Commands of the probes, not of the servers under test: our reset, the harness's INFO.
PROBES = ("config|resetstat", "info")
Stats = dict[str, dict[str, dict[str, int]]]  # role -> command -> {"calls", "usec"}


@dataclass
class Observation:
    """What one harness run showed beside its JSON line; empty if the window was not seen."""

    redis: Stats = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class Redis:
    port: int
    role: str  # "shards", "cluster" (masters), "replicas" (of the cluster), "redis" (a peer's)


@contextlib.contextmanager
def observing(env: dict[str, str], harness: Path, stacks: Path) -> Iterator[Observation]:
    """Around one harness run: ``env`` (the harness's) gets the shim; the observation is
    filled in when the block is left."""
    seen = Observation()
    real = shutil.which("node", path=env.get("PATH"))
    if real is None:  # the harness will say so itself
        yield seen
        return
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp:
        shim, phases = Path(tmp) / "node", Path(tmp) / "phases"
        shim.write_text(SHIM.format(python=sys.executable, phases=PHASES))
        shim.chmod(0o755)
        phases.touch()
        env.update(CHAT_BENCH_REAL_NODE=real, **{PHASES: str(phases)})
        env["PATH"] = f"{tmp}{os.pathsep}{env.get('PATH', '')}"
        done = threading.Event()
        logs = harness.resolve() / "results" / "logs"  # as the valkeys' cwd reads
        watcher = threading.Thread(target=_watch, args=(seen, phases, logs, stacks, done))
        watcher.start()
        try:
            yield seen
        finally:
            done.set()
            watcher.join()


def _watch(
    seen: Observation, phases: Path, logs: Path, stacks: Path, done: threading.Event
) -> None:
    """Reset the counters and start py-spy at measure_start; read them, stop it at measure_end.
    A failure here is recorded, never raised: the run's own figures still count."""
    spy: subprocess.Popen[bytes] | None = None
    try:
        if (text := _phase(phases, "measure_start", done)) is None:
            return
        label = re.search(r"^label (\S+)", text, re.M)
        servers = redis_servers(logs / label.group(1)) if label else []
        for server in servers:
            redis_command(server.port, "CONFIG", "RESETSTAT")
        if not servers:
            seen.problems.append("no valkey process of this run found")
        node = first_python_node(str(phases))
        spy = start_profile(node, stacks) if node else None
        if _phase(phases, "measure_end", done) is not None:
            seen.redis = commandstats(servers)
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file and exits on Ctrl-C
            spy.wait(30)
            if stacks.exists() and stacks.stat().st_size:
                seen.profile = {"pid": node, **summarise(stacks)}
    except Exception as error:  # reported with the run's result instead
        seen.problems.append(f"{type(error).__name__}: {error}")
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()


def _phase(phases: Path, name: str, done: threading.Event) -> str | None:
    """The phase file once it names ``name``; None if the run ended first.  Polled: the file
    is written by another process, and 20 ms is small against a 10 s window."""
    while True:
        text = phases.read_text()
        if f"#phase {name}" in text:
            return text
        if done.wait(0.02):
            return None


def _processes() -> Iterator[tuple[int, str, Path]]:
    """(pid, executable's name, /proc entry) of every process we may look into, by pid."""
    for proc in sorted(Path("/proc").glob("[0-9]*"), key=lambda p: int(p.name)):
        with contextlib.suppress(OSError):  # gone meanwhile, or a kernel thread (no exe)
            yield int(proc.name), Path(os.readlink(proc / "exe")).name, proc


def redis_servers(rundir: Path) -> list[Redis]:
    """This run's valkeys: the harness runs each in --dir under the run's log directory.  A
    valkey rewrites its command line and environment into a title ("valkey-server
    127.0.0.1:PORT [cluster]"), so --dir is read as its cwd, and the port and the role from
    the title if there is one, else from the arguments."""
    found = []
    for _, exe, proc in _processes():
        if exe not in ("valkey-server", "redis-server"):
            continue
        with contextlib.suppress(OSError):
            if not Path(os.readlink(proc / "cwd")).is_relative_to(rundir):
                continue
            argv = (proc / "cmdline").read_bytes().decode(errors="replace")
            title = re.search(r":(\d+)( \[cluster\])?", argv.split("\0")[0])
            args = re.search(r"--port\0(\d+)", argv)
            if port := (title or args):
                cluster = bool(title and title.group(2)) or "--cluster-enabled\0yes" in argv
                found.append(Redis(int(port.group(1)), "cluster" if cluster else "shards"))
    for server in found:  # replicas apply every write again: a row of their own
        if server.role == "cluster" and b"role:slave" in redis_command(server.port, "INFO"):
            server.role = "replicas"
    peer = all(server.role == "shards" for server in found)  # a peer's one valkey
    return [Redis(s.port, "redis") for s in found] if peer else found


def redis_command(port: int, *args: str) -> bytes:
    """One command over a plain socket (no password in the harness): the reply's line, or a
    bulk reply's body (all that CONFIG and INFO answer)."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(request.encode())
        with conn.makefile("rb") as reply:
            line = reply.readline()
            if line.startswith(b"-"):
                raise RuntimeError(f"valkey on port {port}: {line.decode().strip()}")
            return reply.read(int(line[1:]) + 2)[:-2] if line.startswith(b"$") else line


def commandstats(servers: list[Redis]) -> Stats:
    """{role: {command: {calls, usec}}} summed over the role's processes."""
    totals: Stats = {}
    for server in servers:
        text = redis_command(server.port, "INFO", "commandstats").decode(errors="replace")
        for name, calls, usec in re.findall(r"cmdstat_(\S+?):calls=(\d+),usec=(\d+)", text):
            if name in PROBES:
                continue
            row = totals.setdefault(server.role, {}).setdefault(name, {"calls": 0, "usec": 0})
            row["calls"] += int(calls)
            row["usec"] += int(usec)
    return totals


def first_python_node(marker: str) -> int | None:
    """node0 of this run if it is a Python process (this server, peer-python; not peer-node).
    The harness hands our environment, with the phase file's path in it, to what it starts,
    and sets NODE_INDEX for every target (the project's CHAT_NODE_ID follows it)."""
    wanted = {f"{PHASES}={marker}".encode(), b"NODE_INDEX=0"}
    for pid, exe, proc in _processes():  # by pid: a node's own children come later
        with contextlib.suppress(OSError):
            if exe.startswith("python") and wanted <= set(
                (proc / "environ").read_bytes().split(b"\0")
            ):
                return pid
    return None


def start_profile(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy on ``pid`` until stopped; --nonblocking: the node is not paused per sample."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # a stale file from an earlier run must not be summarised
    command = [str(spy), "record", "--pid", str(pid), "--nonblocking", "--rate", str(SPY_RATE),
               "--format", "raw", "--output", str(out)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise(stacks: Path, top: int = 12) -> dict[str, Any]:
    """Shares of py-spy's samples ("f1;f2;f3 count" lines): by a function's own time, inclusive
    (each frame below the loop once), by library (innermost known one) and by call site of
    this package (inclusive)."""
    total = 0
    own, inclusive = collections.Counter[str](), collections.Counter[str]()
    libraries, ours = collections.Counter[str](), collections.Counter[str]()
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if f] or ["(no frame)"]
        n = int(count)
        total += n
        own[frames[-1]] += n
        below = max((i + 1 for i, f in enumerate(frames) if LOOP.match(f)), default=0)
        for name in set(frames[below:]):
            inclusive[name] += n
            if "(chat/" in name:
                ours[name] += n
        libs = [lib for f in frames if (lib := _library(f))]
        libraries[libs[-1] if libs else "other (interpreter, threads)"] += n

    def shares(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * n / total, 1)) for k, n in counter.most_common(top)]

    return {"samples": total, "self": shares(own), "inclusive": shares(inclusive),
            "libraries": shares(libraries), "chat": shares(ours)}  # fmt: skip


def _library(frame: str) -> str | None:
    match = re.search(r"\(([a-z_]+)/", frame)
    return match.group(1) if match and match.group(1) in LIBRARIES else None
