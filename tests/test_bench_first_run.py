"""`bench/first_run.py --measure VENV --json`: the sizing the benchmark applies to both environments, on this one.

The whole benchmark clones the checkout and installs two environments (minutes and an index), so it stays a
script; its measure of one environment is cheap, and what it counts must be what is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

FIRST_RUN = Path(__file__).resolve().parents[1] / "bench" / "first_run.py"


def test_measure_sizes_an_environment_and_counts_its_distributions() -> None:
    done = subprocess.run(
        [sys.executable, str(FIRST_RUN), "--measure", sys.prefix, "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])

    installed = {dist.metadata["Name"] for dist in metadata.distributions(path=[sysconfig.get_paths()["purelib"]])}
    assert figures["env_packages"] == len(installed) > 0
    assert figures["env_mb"] > 1  # pip alone is a few MB


def test_measure_names_a_missing_environment(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(FIRST_RUN), "--measure", str(tmp_path / "nowhere")], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "nowhere is not a directory" in done.stderr


def test_baseline_must_name_a_commit_and_nothing_is_cloned_for_a_wrong_one() -> None:
    done = subprocess.run(
        [sys.executable, str(FIRST_RUN), "--baseline", "no-such-commit-here", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no-such-commit-here is not a commit of this repository" in done.stderr
    assert "first run" not in done.stderr  # refused before any clone or install
