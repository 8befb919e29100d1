"""JSON logs: `--log-format json` or `BRIDGE_LOG_FORMAT=json` make every stderr line one JSON object.

The commands run as real subprocesses (the embedded sandbox answers); the formatter's masking is checked on
records made here.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from omni_bridge._logs import JsonFormatter
from tests.cli.console_helpers import clean_env, run_cli

SECRET = "test-anthropic-key-for-json-logs"


def parsed_lines(stderr: str) -> list[dict[str, object]]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "no log lines"
    return [json.loads(line) for line in lines]  # each line alone is one JSON object


@pytest.mark.parametrize("how", ["option", "setting"])
async def test_every_log_line_of_a_command_is_one_json_object(tmp_path: Path, how: str) -> None:
    args = ["ask", "revenue by region", "--sandbox", "--json", "-vv"]
    extra = {"ANTHROPIC_API_KEY": SECRET, "BRIDGE_ENGINE": "omni"}  # a key the process holds but never logs
    if how == "option":
        args += ["--log-format", "json"]
    else:
        extra["BRIDGE_LOG_FORMAT"] = "json"
    done = await run_cli(*args, env=clean_env(tmp_path, **extra), cwd=tmp_path)
    assert done.code == 0, done.stderr
    lines = parsed_lines(done.stderr)
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
        assert str(line["time"]).endswith("+00:00")
        assert line["level"] in {"DEBUG", "INFO", "WARNING", "ERROR"}
        assert "color_message" not in line
    assert any(str(line["logger"]).startswith("omni_bridge.") for line in lines)
    assert SECRET not in done.stderr
    assert json.loads(done.stdout)["parts"]  # stdout still carries the answer alone


async def test_a_bad_log_format_is_named(tmp_path: Path) -> None:
    done = await run_cli("ask", "x", "--sandbox", env=clean_env(tmp_path, BRIDGE_LOG_FORMAT="xml"), cwd=tmp_path)
    assert done.code == 2 and "BRIDGE_LOG_FORMAT" in done.stderr
    done = await run_cli("ask", "x", "--sandbox", "--log-format", "xml", env=clean_env(tmp_path), cwd=tmp_path)
    assert done.code == 2 and "--log-format" in done.stderr


def test_the_formatter_keeps_extras_and_masks_what_looks_secret() -> None:
    logger = logging.getLogger("omni_bridge.test_json_logs")
    record = logger.makeRecord(
        logger.name,
        logging.WARNING,
        __file__,
        1,
        "call failed with Authorization: Bearer %s",
        ("sk-live-0123456789",),
        None,
        extra={"rows": 3, "tool": "getData", "api_key": "sk-live-0123456789", "headers": {"Authorization": "x"}},
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "WARNING" and line["logger"] == "omni_bridge.test_json_logs"
    assert line["message"] == "call failed with Authorization: Bearer [redacted]"
    assert line["rows"] == 3 and line["tool"] == "getData"
    assert line["api_key"] == "[redacted]" and line["headers"] == {"Authorization": "[redacted]"}
    assert "sk-live" not in json.dumps(line)
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(JsonFormatter().format(failed))["exception"]
