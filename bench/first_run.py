"""Benchmark of the first run: what `python3 dev.py run` installs and how long it takes, next to the test environment.

    python3 bench/first_run.py [--later-starts 3] [--baseline REV] [--keep] [--json]
    python3 bench/first_run.py --measure VENV [--json]      # only size one existing environment

Why: the README's first command should be light (the console's dependencies, not the test tools and the three
agent frameworks) and a later start should reach the prompt in about a second. Goal: the run environment at
most half the size of the test environment.

How: this checkout's committed HEAD is cloned into a temporary directory (a fresh clone, as a new user has; work
not committed is not in it), then, with no OMNI_*/ANTHROPIC_*/BRIDGE_* settings (the embedded sandbox, the
`omni` engine) and a temporary BRIDGE_DATA_DIR:

- **first run**: `python3 dev.py run` with an empty stdin (a pipe at its end: the console starts, prints its
  header and leaves), timed from start to exit, environment creation and installation included;
- **later starts**: the same again `--later-starts` times, the environment ready; the median is reported, with
  the CPU seconds (user + system) of those processes, which depend less on what else the machine runs (the
  1-minute load average at the end is reported too);
- **test environment**: the clone's `dev.py` sets up the environment `test` and `lint` use, in a second
  directory (`OMNI_BRIDGE_VENV`), side by side with the first; the third-party npm peers `test` also installs
  are not part of it.

- **baseline** (`--baseline REV`, e.g. `abc4b1b`, the last commit before `run` installed less): the same first
  run and later starts from a fresh clone of `REV`, in a third directory, so before and after come from one run
  on one machine.

Each environment's size is the bytes of its files (`__pycache__` included: what it takes on disk once used) in
MB (10^6), and its package count the distributions installed in it (`*.dist-info`, pip and omni-bridge
included). pip uses its configured index as the user's would. Progress on stderr; with `--json` the last line
printed is one JSON object (`run_env_mb`, `run_env_packages`, `test_env_mb`, `test_env_packages`,
`first_run_seconds`, `later_start_seconds`, `later_start_cpu_seconds`, `test_env_install_seconds`,
`run_over_test_size`, `load_average`, and with `--baseline` also `baseline_rev`, `baseline_env_mb`,
`baseline_env_packages`, `baseline_first_run_seconds`, `baseline_later_start_seconds`,
`baseline_later_start_cpu_seconds`), for a script to compare from run to run. With `--measure VENV` only
`VENV`'s size and package count (`env_mb`, `env_packages`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def environment_size(venv: Path) -> tuple[float, int]:
    """The MB (10^6 bytes) of the files under `venv` and the number of distributions installed in it.

    Symbolic links count as links, never followed (a venv's `lib64` is one to `lib`).
    """
    total = 0
    for folder, _, files in os.walk(venv):
        total += sum(os.lstat(os.path.join(folder, name)).st_size for name in files)
    site = [*venv.glob("lib/python3*/site-packages"), venv / "Lib" / "site-packages"]  # POSIX, Windows
    packages = sum(1 for folder in site for _ in folder.glob("*.dist-info"))
    return round(total / 1e6, 1), packages


def _clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without the bridge's settings (so: the sandbox), and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "ANTHROPIC_", "BRIDGE_"))}
    env.pop("PYTHONPATH", None)  # the clone's own code, installed in its environment
    env.pop("VIRTUAL_ENV", None)
    return {**env, "BRIDGE_DATA_DIR": str(data_dir), **extra}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed_run(clone: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of `python3 dev.py run` with an empty stdin, from start to exit (which must be 0)."""
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(clone / "dev.py"), "run"],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu
    if done.returncode != 0 or "omni-bridge chat" not in done.stdout:
        sys.exit(f"`python3 dev.py run` failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return seconds, cpu


def _clone(source: str, into: Path, rev: str | None = None) -> Path:
    subprocess.run(["git", "clone", "-q", source, str(into)], check=True)
    if rev is not None:
        subprocess.run(["git", "-C", str(into), "checkout", "-q", rev], check=True)
    return into


def _runs(clone: Path, env: dict[str, str], later_starts: int, label: str) -> dict[str, Any]:
    """The first `dev.py run` of `clone` (creating its `.venv`), then `later_starts` more; figures of the lot."""
    print(f"{label}first run: python3 dev.py run (creates and installs .venv) ...", file=sys.stderr, flush=True)
    first, _ = _timed_run(clone, env)
    later, later_cpu = [], []
    for n in range(later_starts):
        seconds, cpu = _timed_run(clone, env)
        later.append(seconds)
        later_cpu.append(cpu)
        print(f"{label}later start {n + 1}: {seconds:.2f} s ({cpu:.2f} s CPU)", file=sys.stderr, flush=True)
    mb, packages = environment_size(clone / ".venv")
    return {
        "env_mb": mb,
        "env_packages": packages,
        "first_run_seconds": round(first, 2),
        "later_start_seconds": round(statistics.median(later), 2) if later else None,
        "later_start_cpu_seconds": round(statistics.median(later_cpu), 2) if later else None,
    }


def bench(later_starts: int, keep: bool, baseline: str | None = None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="omni-bridge-first-run-"))
    try:
        clone = _clone(str(ROOT), work / "clone")
        test_venv = work / "venv-test"
        env = _clean_env(work / "data")
        before = None
        if baseline is not None:  # first, so the index's caches favour the run measured after, not this one
            old = _clone(str(ROOT), work / "baseline", baseline)
            before = _runs(old, _clean_env(work / "baseline-data"), later_starts, f"baseline {baseline}: ")
        after = _runs(clone, env, later_starts, "")

        print("test environment: dev.py's setup for `test` in a second directory ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import dev; dev.ensure_environment('dev')"],
            cwd=clone,
            env={**env, "OMNI_BRIDGE_VENV": str(test_venv)},
            check=True,
        )
        test_install = time.perf_counter() - started
        test_mb, test_packages = environment_size(test_venv)
        if keep:
            print(f"kept: {work}", file=sys.stderr)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    run_mb = after["env_mb"]
    figures = {
        "run_env_mb": run_mb,
        "run_env_packages": after["env_packages"],
        "test_env_mb": test_mb,
        "test_env_packages": test_packages,
        "first_run_seconds": after["first_run_seconds"],
        "later_start_seconds": after["later_start_seconds"],
        "later_start_cpu_seconds": after["later_start_cpu_seconds"],
        "load_average": round(os.getloadavg()[0], 1),
        "test_env_install_seconds": round(test_install, 2),
        "run_over_test_size": round(run_mb / test_mb, 3) if test_mb else None,
    }
    if before is not None:
        figures["baseline_rev"] = baseline
        figures.update({f"baseline_{key}": value for key, value in before.items()})
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--later-starts", type=int, default=3, help="later starts to time (default 3)")
    parser.add_argument(
        "--baseline", metavar="REV", help="also time a fresh clone of this commit, as the figure before (e.g. abc4b1b)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone and environments")
    parser.add_argument("--measure", type=Path, metavar="VENV", help="only size this existing environment")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, last")
    args = parser.parse_args(argv)

    if args.baseline is not None:
        known = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "-q", "--verify", f"{args.baseline}^{{commit}}"],
            capture_output=True,
            check=False,
        )
        if known.returncode != 0:
            parser.error(f"--baseline: {args.baseline} is not a commit of this repository")

    figures: dict[str, Any]
    if args.measure is not None:
        if not args.measure.is_dir():
            parser.error(f"--measure: {args.measure} is not a directory")
        mb, packages = environment_size(args.measure)
        figures = {"env_mb": mb, "env_packages": packages}
        print(f"{args.measure}: {mb} MB, {packages} packages")
    else:
        figures = bench(args.later_starts, args.keep, args.baseline)
        print(f"{'environment':<12} {'MB':>8} {'packages':>9}")
        print(f"{'run':<12} {figures['run_env_mb']:>8} {figures['run_env_packages']:>9}")
        print(f"{'test':<12} {figures['test_env_mb']:>8} {figures['test_env_packages']:>9}")
        print(f"run / test size: {figures['run_over_test_size']} (goal: 0.5 at most)")
        print(f"first run {figures['first_run_seconds']} s, later start {figures['later_start_seconds']} s (median)")
        print(f"later start CPU {figures['later_start_cpu_seconds']} s; load average {figures['load_average']}")
        print(f"test environment installed in {figures['test_env_install_seconds']} s")
        if args.baseline:
            print(
                f"baseline {args.baseline}: {figures['baseline_env_mb']} MB, {figures['baseline_env_packages']} "
                f"packages; first run {figures['baseline_first_run_seconds']} s, later start "
                f"{figures['baseline_later_start_seconds']} s ({figures['baseline_later_start_cpu_seconds']} s CPU)"
            )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
