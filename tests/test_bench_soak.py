"""`bench/soak.py` at a small N: it starts everything, injects every fault, audits, and cleans up after itself.

The soak is a script, not a test, so nothing else would notice it rotting as the service changes. Run small
(16 turns, 4 users), it still goes through both fault windows (429/503 with session drops, and a worker
SIGKILLed and restarted), and what it prints must hold the issue's goals: no lost message, no stuck
response, no cross-user row, every turn accounted for, and its PostgreSQL schema dropped afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.stores._postgres import ENV, postgres_url

SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"


def _soak_schemas(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'soak\\_%'").fetchall()
    return {row[0] for row in rows}


def test_a_small_soak_holds_the_goals_and_leaves_nothing_behind() -> None:
    url = postgres_url()
    before = _soak_schemas(url)
    argv = [sys.executable, str(SOAK), "--turns", "16", "--users", "4", "--concurrency", "4", "--max-seconds", "100"]
    done = subprocess.run(
        [*argv, "--pg", url, "--json"], capture_output=True, text=True, timeout=150, env={**os.environ, ENV: url}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])

    assert figures["turns_run"] + figures["turns_cut_by_deadline"] == 16
    assert figures["fault_windows_s"] and figures["kill_windows_s"], figures  # both faults really happened
    assert figures["sandbox_sessions_dropped"] > 0, figures
    assert figures["lost_messages"] == 0, figures["details"]
    assert figures["stuck_responses"] == 0, figures["details"]
    assert figures["cross_user_rows"] == 0, figures["details"]
    assert figures["threads_audited"] >= 4
    assert "failed turns" in done.stdout  # the table is printed before the JSON
    assert _soak_schemas(url) <= before  # its own schema is gone
