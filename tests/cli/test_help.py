"""`omni-bridge`'s help follows the conventions: wrapped to the terminal, an example on every command, short
options, `-V`, the help when no command is given, and the closest command, choice or option for a typo.

Run as the real command (`python -m omni_bridge.cli`, what the `omni-bridge` script calls) with COLUMNS=80, as a
terminal of 80 columns would set it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from omni_bridge import __version__
from omni_bridge.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["ask", "chat", "demo", "doctor", "mcp-proxy", "prune", "sandbox", "serve"]


def omni_bridge(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "ANTHROPIC_", "BRIDGE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["COLUMNS"] = "80"
    return subprocess.run(
        [sys.executable, "-m", "omni_bridge.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_command_is_listed(tmp_path: Path) -> None:
    out = omni_bridge("--help", tmp_path=tmp_path).stdout
    listed = re.findall(r"^    ([a-z-]+) ", out.split("\ncommands:\n")[1], re.M)

    assert sorted(listed) == COMMANDS  # so the tests below see every command


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_fits_80_columns_and_ends_with_examples(command: str | None, tmp_path: Path) -> None:
    done = omni_bridge(*filter(None, [command, "--help"]), tmp_path=tmp_path)

    assert done.returncode == 0, done.stderr
    too_wide = [line for line in done.stdout.splitlines() if len(line) > 80]
    assert too_wide == []
    examples = done.stdout.split("\nexamples:\n")[1].splitlines()
    shown = [line.strip() for line in examples if not line.strip().startswith("#")]
    assert shown and all(line.startswith("omni-bridge ") or "omni-bridge " in line for line in shown)
    if command is not None:
        assert any(f"omni-bridge {command}" in line for line in shown)  # an example of this very command


def test_descriptions_are_wrapped_not_left_as_one_long_line(tmp_path: Path) -> None:
    out = omni_bridge("prune", "--help", tmp_path=tmp_path).stdout
    description = out.split("\n\n")[1]  # after the usage

    assert "Delete what was last changed" in description
    assert len(description.splitlines()) > 3  # a 400-character description, in lines of 78 at most


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("chat", ["-u, --user USER", "-s, --sandbox", "-e, --engine", "-c, --conversation ID", "-v, --verbose"]),
        ("ask", ["-u, --user USER", "-s, --sandbox"]),
        ("doctor", ["-u, --user USER", "-s, --sandbox"]),
        ("demo", ["-u, --user USER", "-q, --question QUESTION"]),
        ("mcp-proxy", ["-u, --user USER", "-t, --transport", "-p, --port PORT", "--host HOST"]),
        ("serve", ["-p, --port PORT", "--host HOST", "-s, --sandbox", "--worker-id ID"]),
        ("sandbox", ["-p, --port PORT", "--host HOST", "--data-dir DIR", "--job-step-seconds SECONDS"]),
        ("prune", ["-n, --dry-run", "--days N", "--store URL"]),
    ],
)
def test_short_options_and_one_metavar_per_kind_of_value(command: str, options: list[str], tmp_path: Path) -> None:
    out = omni_bridge(command, "--help", tmp_path=tmp_path).stdout

    assert [option for option in options if option not in out] == []


def test_the_short_options_work(tmp_path: Path) -> None:
    args = build_parser().parse_args(["chat", "-s", "-u", "bob", "-e", "omni", "-c", "conv_1", "-vv"])

    assert (args.sandbox, args.user, args.engine, args.conversation, args.verbose) == (True, "bob", "omni", "conv_1", 2)


@pytest.mark.parametrize("option", ["-V", "--version"])
def test_version(option: str, tmp_path: Path) -> None:
    done = omni_bridge(option, tmp_path=tmp_path)

    assert (done.returncode, done.stdout.strip()) == (0, f"omni-bridge {__version__}")


def test_no_arguments_prints_the_help_and_exits_2(tmp_path: Path) -> None:
    done = omni_bridge(tmp_path=tmp_path)

    assert done.returncode == 2  # the command was missing: as click and Typer, not a success for a script
    assert done.stdout == ""
    assert done.stderr.startswith("usage: omni-bridge")
    assert "commands:" in done.stderr and "examples:" in done.stderr and "chat" in done.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["chta"], "invalid choice: 'chta'; did you mean chat?"),
        (["mcp-proxi"], "did you mean mcp-proxy?"),
        (["chat", "--engine", "claud"], "argument -e/--engine: invalid choice: 'claud'; did you mean claude?"),
        (["chat", "--usr", "bob"], "omni-bridge chat: unrecognized arguments: --usr bob; did you mean --user?"),
        (["serve", "--prot=8080"], "did you mean --port?"),
        (["--verbsoe", "doctor"], "omni-bridge: unrecognized arguments: --verbsoe; did you mean --verbose?"),
    ],
)
def test_a_typo_is_answered_with_the_closest_name(args: list[str], said: str, tmp_path: Path) -> None:
    done = omni_bridge(*args, tmp_path=tmp_path)

    assert done.returncode == 2
    assert said in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # one line, as every bad option


def test_a_word_like_no_command_gets_the_list_and_no_guess(tmp_path: Path) -> None:
    done = omni_bridge("zzzz", tmp_path=tmp_path)

    assert done.returncode == 2
    assert "invalid choice: 'zzzz' (choose from chat, ask," in done.stderr
    assert "did you mean" not in done.stderr
    assert re.search(r"see omni-bridge --help$", done.stderr.strip())
