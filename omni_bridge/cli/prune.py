"""`omni-bridge prune`: delete the records older than the retention period, now, and say how many of each kind.

What the running service does hourly (`BRIDGE_RETENTION_DAYS`), for a store no service runs on, a cron job, or
a first clean-up after retention was turned on: threads last updated before the cutoff go with their messages,
responses, events and conversation (never a thread whose response is still queued or running), and so do
conversations of no thread and artifacts made before then. `--dry-run` counts the same and deletes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from omni_bridge.cli.options import examples

if TYPE_CHECKING:
    from omni_bridge.cli.options import Commands
    from omni_bridge.stores import PruneCounts, StoreLocation

__all__ = ["add_command", "run"]


def _days(text: str) -> float:
    """The `--days` option's type: a number of days above 0 (fractions allowed)."""
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not math.isfinite(days) or days <= 0:
        raise argparse.ArgumentTypeError(f"{text} days: give more than 0 days (0 would mean keep everything)")
    return days


def add_command(commands: Commands) -> None:
    """Register `prune` on the `omni-bridge` parser."""
    prune = commands.add_parser(
        "prune",
        help="delete threads, messages, responses, events, conversations and artifacts older than N days",
        description="Delete what was last changed more than N days ago (default BRIDGE_RETENTION_DAYS, 90) and "
        "print how many records of each kind went: threads with their messages, responses, events and "
        "conversation, conversations that belong to no thread, and artifacts. A thread whose response is "
        "still queued or running is kept. The service does the same at start and hourly; this command is for "
        "a store nothing serves, a cron job, or to see first what would go (--dry-run).",
        epilog=examples(
            "omni-bridge prune -n               # what would go now (BRIDGE_RETENTION_DAYS)",
            "omni-bridge prune --days 30        # delete what is older than 30 days",
            "omni-bridge prune --days 7 --store postgresql://bridge@db/bridge",
        ),
    )
    prune.add_argument(
        "--days",
        type=_days,
        metavar="N",
        help="keep the last N days (a number above 0; default BRIDGE_RETENTION_DAYS, where 0 keeps everything)",
    )
    prune.add_argument("-n", "--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    prune.add_argument(
        "--store",
        metavar="URL",
        help="the store: a SQLite path, sqlite:///… or postgresql://… (default BRIDGE_STORE_URL, else "
        "BRIDGE_DATA_DIR/bridge.db)",
    )
    prune.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """0 once pruned (or nothing to do); 2 for a bad setting or a store that is not there."""
    from omni_bridge.config import load_settings
    from omni_bridge.stores import store_location

    settings = load_settings()
    days: float = args.days if args.days is not None else settings.bridge_retention_days
    if days <= 0:
        print("BRIDGE_RETENTION_DAYS is 0: retention is off and nothing was deleted; pass --days N to prune anyway")
        return 0
    if args.store is not None:
        settings = load_settings(bridge_store_url=args.store)
    return asyncio.run(_prune(store_location(settings), days, dry_run=args.dry_run))


async def _prune(location: StoreLocation, days: float, *, dry_run: bool) -> int:
    from omni_bridge.exceptions import ConfigError
    from omni_bridge.stores import open_store

    if location.kind == "sqlite" and not location.path.exists():
        raise ConfigError(f"BRIDGE_STORE_URL: there is no store at {str(location.path)!r} (nothing to prune)")
    cutoff = datetime.now(UTC) - timedelta(days=days)
    async with open_store(location) as store:
        counts = await store.prune(cutoff, dry_run=dry_run)
    print(_report(counts, location, cutoff, days, dry_run=dry_run))
    return 0


def _report(counts: PruneCounts, location: StoreLocation, cutoff: datetime, days: float, *, dry_run: bool) -> str:
    verb = "Would delete" if dry_run else "Deleted"
    lines = [f"{verb} from {location} what was last changed before {cutoff:%Y-%m-%d %H:%M} UTC ({days:g} days):"]
    lines += [f"  {kind:<14} {count:>8,}" for kind, count in counts.as_dict().items()]
    if dry_run:
        lines.append("Dry run: nothing was deleted.")
    return "\n".join(lines)
