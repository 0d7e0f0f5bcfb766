"""What a benchmark run moved, beside its CPU totals: Redis commands per message (``INFO
commandstats``, reset when the measured window opens) and the first server node's heaviest
functions (py-spy, sampling the measured window).

The shared harness is used as a tool and not changed, so the measured window is learnt from
the load generator itself: the harness finds ``node`` on ``PATH``, and ``observing()`` puts a
shim first on it that runs the real ``node``, passes everything through, and copies the
generator's ``#phase`` lines (and its ``--label``, the run id) into a file read here.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SHIM = """#!{python}
import os, subprocess, sys
real, args = os.environ["CHAT_BENCH_REAL_NODE"], sys.argv[1:]
if not any(a.endswith("loadgen.js") for a in args):
    os.execv(real, [real, *args])
with open(os.environ["CHAT_BENCH_PHASES"], "a", buffering=1) as phases:
    phases.write("label " + (args[args.index("--label") + 1] if "--label" in args else "") + "\\n")
    child = subprocess.Popen([real, *args], stderr=subprocess.PIPE)
    for raw in child.stderr:
        sys.stderr.buffer.write(raw)
        sys.stderr.flush()
        if raw.startswith(b"#phase "):
            phases.write(raw.decode())
sys.exit(child.wait())
"""
LIBRARIES = ("chat", "socketio", "engineio", "aiohttp", "redis", "msgspec", "asyncio", "jwt")


@contextlib.contextmanager
def observing(env: dict[str, str], seconds: float, out: Path) -> Iterator[dict[str, Any]]:
    """Around one harness run: ``env`` gets the shim; the yielded dict gets ``redis`` and
    ``profile`` once the run is over (empty if the window was never seen)."""
    found: dict[str, Any] = {}
    real = shutil.which("node", path=env.get("PATH"))
    if real is None:
        yield found
        return
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp:
        shim, phases = Path(tmp) / "node", Path(tmp) / "phases"
        shim.write_text(SHIM.format(python=sys.executable))
        shim.chmod(0o755)
        phases.touch()
        env.update(CHAT_BENCH_REAL_NODE=real, CHAT_BENCH_PHASES=str(phases))
        env["PATH"] = f"{tmp}{os.pathsep}{env.get('PATH', '')}"
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(phases, seconds, out, found, stop))
        watcher.start()
        try:
            yield found
        finally:
            stop.set()
            watcher.join()


def _watch(
    phases: Path, seconds: float, out: Path, found: dict[str, Any], stop: threading.Event
) -> None:
    """Reset the counters at measure_start, read them at measure_end."""
    ports: list[tuple[int, str]] = []
    spy: subprocess.Popen[bytes] | None = None
    while not stop.wait(0.05):
        text = phases.read_text()
        if not ports and "measure_start" in text:
            label = re.search(r"^label (\S*)", text, re.M)
            ports = redis_ports(label.group(1) if label else "")
            for port, _ in ports:
                redis_command(port, "CONFIG", "RESETSTAT")
            spy = start_profile(seconds, out)
        if ports and "measure_end" in text:
            found["redis"] = commandstats(ports)
            break
    if spy is not None:
        spy.wait()
        if out.exists() and out.stat().st_size:
            found["profile"] = summarise(out)


def redis_ports(label: str) -> list[tuple[int, str]]:
    """The run's valkey processes: (port, "cluster" or "shards").  A valkey server rewrites
    its command line into a title ("valkey-server *:PORT [cluster]") and runs in its --dir,
    which the harness makes under the run's log directory (named by the label)."""
    ports = []
    for pid, title in _titles():
        match = re.match(r"\S*(?:valkey|redis)-server \S*:(\d+)( \[cluster\])?", title)
        if match is None:
            continue
        with contextlib.suppress(OSError):
            if label in os.readlink(f"/proc/{pid}/cwd"):
                ports.append((int(match.group(1)), "cluster" if match.group(2) else "shards"))
    return ports


def _titles() -> Iterator[tuple[str, str]]:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                raw = (proc / "cmdline").read_bytes()
                yield proc.name, raw.replace(b"\0", b" ").decode(errors="replace").strip()


def redis_command(port: int, *args: str) -> bytes:
    """One command in RESP over a plain socket (the harness's Redis has no password)."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(request.encode())
        data = b""
        while True:
            chunk = conn.recv(65536)
            data += chunk
            if not chunk or _complete(data):
                return data


def _complete(data: bytes) -> bool:
    if data.startswith(b"$"):
        size = int(data[1 : data.index(b"\r\n")])
        return len(data) >= data.index(b"\r\n") + 2 + max(size, 0) + 2
    return data.endswith(b"\r\n")


def commandstats(ports: list[tuple[int, str]]) -> dict[str, dict[str, dict[str, int]]]:
    """{role: {command: {calls, usec}}} summed over the role's processes."""
    totals: dict[str, dict[str, dict[str, int]]] = {}
    for port, role in ports:
        text = redis_command(port, "INFO", "commandstats").decode(errors="replace")
        for name, calls, usec in re.findall(r"cmdstat_(\S+?):calls=(\d+),usec=(\d+)", text):
            row = totals.setdefault(role, {}).setdefault(name, {"calls": 0, "usec": 0})
            row["calls"] += int(calls)
            row["usec"] += int(usec)
    return totals


def start_profile(seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy on the first server node (a Python one: this server or peer-python)."""
    spy = Path(sys.executable).with_name("py-spy")
    pid = first_python_node()
    if pid is None or not spy.exists():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [str(spy), "record", "--pid", str(pid), "--duration", str(max(1, int(seconds - 1))),
               "--rate", "100", "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def first_python_node() -> int | None:
    for pattern in ("-m chat serve", "peers/python"):
        found = subprocess.run(
            ["pgrep", "-o", "-f", "--", pattern], check=False, capture_output=True
        )
        if found.stdout.strip():
            return int(found.stdout.split()[0])
    return None


def summarise(stacks: Path, top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """Shares of samples: by library (innermost known frame), by function (self time) and
    by call site of this package (inclusive)."""
    total, by_lib = 0, collections.Counter[str]()
    inclusive, innermost = collections.Counter[str](), collections.Counter[str]()
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        total += n
        libs = [lib for f in frames if (lib := _library(f))]
        by_lib[libs[-1] if libs else "other (threads, interpreter)"] += n
        innermost[re.sub(r":\d+\)$", ")", frames[-1])] += n
        for name in {re.sub(r":\d+\)$", ")", f) for f in frames if "chat/" in f}:
            inclusive[name] += n

    def shares(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {"libraries": shares(by_lib), "self": shares(innermost), "chat": shares(inclusive)}


def _library(frame: str) -> str | None:
    match = re.search(r"\(([a-z_]+)/", frame)
    name = match.group(1) if match else None
    return name if name in LIBRARIES else None


def per_message(redis: dict[str, dict[str, dict[str, int]]], messages: float) -> list[str]:
    """Printable lines: each role's commands by µs per message, calls per message."""
    lines = []
    for role, commands in sorted(redis.items()):
        usec = sum(c["usec"] for c in commands.values())
        lines.append(f"  redis {role}: {usec / messages:.1f} µs/msg in commands")
        ranked = sorted(commands.items(), key=lambda kv: -kv[1]["usec"])[:8]
        for name, c in ranked:
            lines.append(
                f"    {name:<14} {c['calls'] / messages:6.2f} calls/msg "
                f"{c['usec'] / messages:7.1f} µs/msg"
            )
    return lines
