"""The sandbox's list of guesses stays a list a reader can trust: every guess numbered once and marked.

`omni_bridge/sandbox/docs/sandbox-guesses.md` is served by `searchOmniDocs` and read by people deciding what
to check against a live Omni, so a row without a status, or two rows with one number, would mislead them.
"""

from __future__ import annotations

from importlib import resources

STATUSES = ("confirmed", "contradicted", "unknown", "sandbox-only")


def guess_rows() -> list[list[str]]:
    text = resources.files("omni_bridge.sandbox").joinpath("docs", "sandbox-guesses.md").read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            rows.append(cells)
    return rows


def test_every_guess_is_numbered_once_in_order_and_marked_with_a_status() -> None:
    rows = guess_rows()
    assert [int(row[0]) for row in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        status = row[2]
        assert status.startswith(STATUSES), f"guess {row[0]} has no status: {status!r}"


def test_the_december_features_each_have_their_guesses_listed() -> None:
    guesses = " ".join(row[1] for row in guess_rows())
    for feature in (
        "/oauth/token",
        "VIEWER",
        "`/mcp`",
        "isError",
        "AI_CREDIT_LIMIT_EXCEEDED",
        "SAMPLED 100 ROWS",
        "pageInfo",
    ):
        assert feature in guesses, f"no guess about {feature}"
