"""The examples run as documented: each is started as a user would start it (a fresh process, no configuration)
and its output is checked against the sandbox's own numbers.

One parametrized case per example: add an `Example` to `EXAMPLES` with the script, its arguments and a check
of its output. The expected figures come from the sandbox's query engine run directly on the demo database,
not through the bridge, so an example that printed the wrong user's data would fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from omni_bridge.sandbox._dataset import build_database
from omni_bridge.sandbox._query import Query, QueryUser, run_query
from omni_bridge.sandbox._semantic import get_model

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT_SECONDS = 120
"""A bound on one example's run, so a hung example fails the test instead of blocking the suite."""

Revenue = Mapping[str, str]
"""Total revenue by region, formatted as the examples print it (`1,234.56`)."""


@dataclass(frozen=True)
class Example:
    script: str
    check: Callable[[str, Revenue], None]
    """Asserts on the example's standard output, given the expected revenue by region."""
    args: tuple[str, ...] = ()


def check_python_api(output: str, revenue: Revenue) -> None:
    alice, separator, bob = output.partition("=== bob")
    assert separator, f"bob's part is missing:\n{output}"
    # alice's first question and her follow-up in the same conversation both completed, with her region only
    assert "=== alice, same conversation" in alice
    assert alice.count("completed]") == 2, alice
    assert revenue["West"] in alice and "| West |" in alice
    assert revenue["East"] not in alice and "East" not in alice
    # bob, on the same bridge, gets his own region's number and nothing of alice's
    assert revenue["East"] in bob and "| East |" in bob
    assert revenue["West"] not in bob and "West" not in bob


EXAMPLES = [
    Example("python_api.py", check_python_api),
]


@pytest.fixture(scope="module")
def revenue() -> Iterator[Revenue]:
    conn = build_database()
    try:
        model = get_model("ecommerce")
        query = Query(model_id=model.id, topic="order_items", fields=["customers.region", "order_items.total_revenue"])
        result = run_query(conn, model, query, QueryUser("oracle", {"region": "all"}))
        yield {str(region): f"{float(total):,.2f}" for region, total in result.rows}
    finally:
        conn.close()


def _no_configuration() -> dict[str, str]:
    """The environment without the bridge's settings: the example must run with none (sandbox, omni engine)."""
    return {
        name: value for name, value in os.environ.items() if not name.startswith(("OMNI_", "ANTHROPIC_", "BRIDGE_"))
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.script)
def test_example_runs_and_prints_each_users_own_numbers(example: Example, revenue: Revenue, tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / example.script), *example.args],
        cwd=tmp_path,  # no .env of the developer's is read
        env=_no_configuration(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    example.check(completed.stdout, revenue)


README = EXAMPLES_DIR.parent / "README.md"
QUICKSTART = EXAMPLES_DIR.parent / "docs" / "quickstart.md"


def _python_snippet(document: Path, heading: str) -> str:
    """The first Python block under `heading` in `document`, exactly as a reader would paste it."""
    text = document.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


def _run_snippet(code: str, tmp_path: Path) -> str:
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**_no_configuration(), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    return completed.stdout


def test_the_readme_snippet_runs_as_pasted(revenue: Revenue, tmp_path: Path) -> None:
    output = _run_snippet(_python_snippet(README, "## Use it from Python"), tmp_path)
    # alice (West) twice, in one conversation; then cust-42, made a West user by its profile
    assert output.count(revenue["West"]) == 2, output
    assert "Order Month" in output  # the follow-up was answered by month
    assert revenue["East"] not in output and "East" not in output


def test_the_quickstart_snippet_runs_as_pasted(revenue: Revenue, tmp_path: Path) -> None:
    output = _run_snippet(_python_snippet(QUICKSTART, "## 1. Embedded in a chatbot runtime"), tmp_path)
    assert revenue["West"] in output
    assert revenue["East"] not in output and "East" not in output
