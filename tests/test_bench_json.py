"""Every script in `bench/` takes `--json`; `bench/throughput.py` at a tiny size ends with its figures as JSON.

The benchmarks are scripts, not tests, so nothing else would notice one losing its `--json` or its last line
no longer parsing. Run tiny (3 conversations, 6 answers per way), the throughput bench still starts the backends
process and a `serve` worker, answers through `Bridge.answer`, SSE and polling, and must account for each answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py") if not path.name.startswith("_"))


def test_every_bench_script_takes_json() -> None:
    # All at once: each `--help` mostly waits for its imports.
    helps = {
        script: subprocess.Popen(
            [sys.executable, str(BENCH / script), "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for script in SCRIPTS
    }
    assert {"memory.py", "soak.py", "throughput.py"} <= set(helps)
    for script, process in helps.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, (script, err[-2000:])
        assert "--json" in out, script


def test_throughput_at_a_tiny_size_prints_its_figures_as_json_last() -> None:
    argv = [sys.executable, str(BENCH / "throughput.py"), "--concurrency", "3", "--answers", "6", "--follow", "both"]
    done = subprocess.run([*argv, "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])

    assert figures["concurrency"] == 3
    for way in ("bridge", "serve", "serve_poll"):
        assert figures[f"{way}_answers"] == 6, figures
        assert figures[f"{way}_not_completed"] == 0, figures
        assert figures[f"{way}_answers_per_s"] > 0
        assert 0 < figures[f"{way}_p50_ms"] <= figures[f"{way}_p99_ms"]
    assert figures["serve_non_2xx"] == {}
    assert figures["serve_over_bridge_answers_per_s"] > 0
    assert "Bridge.answer (in-process)" in done.stdout  # the table is printed before the JSON
