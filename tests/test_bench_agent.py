"""`bench/agent.py --json` at one round: the figures a script compares from run to run, last, as one JSON object.

The benchmark is a script, not a test; run small, it still goes through both configurations and the SDK baseline,
and its figures must say what the bridge does: pinning model and topic hides the selector tools, so a pinned
answer needs fewer LLM round trips, with the same rows either way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

AGENT = Path(__file__).resolve().parents[1] / "bench" / "agent.py"


def test_one_round_prints_the_headline_figures_as_json_last() -> None:
    done = subprocess.run(
        [sys.executable, str(AGENT), "--rounds", "1", "--users", "alice", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])

    assert figures["round_trips_pinned"] < figures["round_trips_unpinned"]
    assert figures["answers_with_same_rows"] == figures["answers_compared"] == 10
    assert 0 < figures["cache_read_share_later_pinned"] <= 1
    assert figures["bridge_cpu_ms_per_turn"] > 0 and figures["sdk_cpu_ms_per_turn"] > 0
