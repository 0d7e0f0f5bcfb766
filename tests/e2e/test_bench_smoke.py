"""A smoke run of the published benchmark (bench/run.py --smoke): seconds-long loads, this
server only, through the shared harness; it must produce its JSON, Markdown and plots."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(os.environ.get("CHAT_BENCH_HARNESS", ROOT.parent / "shared" / "bench"))

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_the_benchmark_runs_end_to_end_with_a_tiny_load(tmp_path):
    if not (HARNESS / "run.py").exists() or shutil.which("node") is None:
        pytest.skip(f"BENCH SMOKE SKIPPED: no benchmark harness at {HARNESS} or no node")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=580, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads((tmp_path / "latest.json").read_text())
    benches = {r["bench"] for r in runs}
    assert benches == {"ring", "dm", "room", "nodes", "idle"}
    for run in runs:
        if run["bench"] in ("dm", "room", "nodes"):
            assert run["ok"] and run["lost"] == 0, run.get("error")
    idle = next(r for r in runs if r["bench"] == "idle")
    assert idle["ok"] and idle["floor"]["ok"]
    report = (tmp_path / "latest.md").read_text()
    assert "## dm" in report and "lookups/s" in report
    for plot in ("dm_throughput.png", "dm_latency.png", "nodes_cpu.png"):
        assert (tmp_path / plot).stat().st_size > 1000
