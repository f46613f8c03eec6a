"""The CLI's report, export and rebuild-counts subcommands (parsed in bot/cli.py).

The person at the command line runs the deployment, so `--include-sensitive` is theirs to
give; the web API decides it by role instead (bot/staff_api.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from feedback.exports import (
    AGGREGATE_KINDS,
    aggregate_rows,
    aggregates_csv,
    items_xlsx,
    write_items_csv,
)
from feedback.items import ItemStatus
from feedback.queries import ItemFilter
from feedback.report import FORMATS, build_report, render
from feedback.rollups import rebuild
from feedback.summary import Window
from staff.audit import Action, Actor, record
from storage.base import utcnow

DEFAULT_DAYS = 7


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`report` and `export`, added to the root parser's subcommands."""
    report = commands.add_parser(
        "report",
        help="the gap flags and the summary of the feedback (default: the last 7 days)",
        description="Days are UTC days. The flags are computed as at the end of the period.",
    )
    report.add_argument("--format", choices=FORMATS, default="text")
    add_period(report, default_days=DEFAULT_DAYS)
    report.add_argument("--area", help="one adm1 area code")
    report.add_argument(
        "--include-sensitive", action="store_true", help="count sensitive items too"
    )
    export = commands.add_parser("export", help="feedback items or aggregates").add_subparsers(
        dest="export_kind", required=True
    )
    items = export.add_parser(
        "items",
        help="feedback items as CSV or XLSX (pseudonymous; sensitive items left out unless "
        "--include-sensitive)",
    )
    items.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    items.add_argument("--output", "-o", help="file to write (default: standard output)")
    add_period(items, default_days=None)
    items.add_argument("--sector", type=int, choices=range(1, 16), metavar="1-15")
    items.add_argument("--cluster")
    items.add_argument("--area", help="adm1 area code")
    items.add_argument("--language")
    items.add_argument("--type")
    items.add_argument("--status", choices=[s.value for s in ItemStatus], action="append")
    items.add_argument("--urgent", action="store_true", help="urgent items only")
    items.add_argument("--include-sensitive", action="store_true")
    aggregates = export.add_parser(
        "aggregates",
        help="daily counts as CSV with an HXL hashtag row (no personal data, never sensitive)",
    )
    aggregates.add_argument("--output", "-o", help="file to write (default: standard output)")
    aggregates.add_argument("--by", choices=list(AGGREGATE_KINDS), default="sector")
    add_period(aggregates, default_days=None)
    aggregates.add_argument("--area", help="adm1 area code")


def add_period(parser: argparse.ArgumentParser, *, default_days: int | None) -> None:
    parser.add_argument("--since", type=day, help="first day, YYYY-MM-DD")
    parser.add_argument("--until", type=day, help="last day, YYYY-MM-DD (default: today)")
    default = f"default {default_days}" if default_days else "default: all"
    parser.add_argument("--days", type=whole_days, help=f"the last N days ({default})")
    parser.set_defaults(default_days=default_days)


def day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def whole_days(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 3660:
        raise argparse.ArgumentTypeError("must be a whole number of days, 1 to 3660")
    return int(value)


class PeriodError(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    since: date | None  # None: from the first day
    until: date | None  # None: to the last day

    def window(self) -> Window:
        assert self.since is not None and self.until is not None
        return Window(self.since, self.until)


def period(args: argparse.Namespace, now: datetime) -> Period:
    """The days asked for: --since/--until, or the last --days (or the command's default)."""
    if args.since is not None and args.days is not None:
        raise PeriodError("give --since or --days, not both")
    days = args.days or args.default_days
    if args.since is None and days is None:
        return Period(None, args.until)
    until = args.until or now.astimezone(UTC).date()
    since = args.since or until - timedelta(days=days - 1)
    if since > until:
        raise PeriodError(f"--since {since} is after --until {until}")
    return Period(since, until)


async def command(settings: Settings, args: argparse.Namespace) -> int:
    """`report`, `export ...` and `feedback rebuild-counts`."""
    now = utcnow()
    try:
        days = Period(None, None) if args.command == "feedback" else period(args, now)
    except PeriodError as problem:
        print(f"crisis-comms: {problem}", file=sys.stderr)
        return 2
    from bot.runner import open_database  # the bot's modules, only when a command runs

    database = await open_database(settings)
    try:
        async with database.transaction() as session:
            if args.command == "feedback":
                rebuilt = await rebuild(session)
                print(f"Counts rebuilt from {rebuilt.items} items: {rebuilt.rows} rows.")
            elif args.command == "report":
                report = await build_report(
                    session,
                    settings.crisis,
                    settings.services.flags,
                    days.window(),
                    now,
                    area_code=args.area,
                    include_sensitive=args.include_sensitive,
                )
                sys.stdout.write(render(report, args.format))
            elif args.export_kind == "aggregates":
                rows = await aggregate_rows(
                    session, by=args.by, since=days.since, until=days.until, area_code=args.area
                )
                await emit(aggregates_csv(rows), args.output, f"{len(rows)} rows")
                await _exported(session, now, "aggregates.csv", f"by={args.by} rows={len(rows)}")
            elif args.format == "xlsx":
                wanted = item_filter(args, days)
                body, count = await items_xlsx(session, wanted)
                await emit(body, args.output, f"{count} items")
                await _exported(session, now, "items.xlsx", _filter_detail(wanted, count))
            else:
                wanted = item_filter(args, days)
                count = await items_csv(session, wanted, args.output)
                await _exported(session, now, "items.csv", _filter_detail(wanted, count))
    finally:
        await database.dispose()
    return 0


def item_filter(args: argparse.Namespace, days: Period) -> ItemFilter:
    def midnight(day: date | None) -> datetime | None:
        return None if day is None else datetime.combine(day, time(), tzinfo=UTC)

    return ItemFilter(
        sector=args.sector,
        cluster=args.cluster,
        area_code=args.area,
        language=args.language,
        type=args.type,
        statuses=tuple(args.status or ()),
        since=midnight(days.since),
        until=midnight(None if days.until is None else days.until + timedelta(days=1)),
        urgent=True if args.urgent else None,
        include_sensitive=args.include_sensitive,
    )


async def _exported(session: AsyncSession, now: datetime, target: str, detail: str) -> None:
    """The audit log's record of a command-line export (counts and filters, never content)."""
    await record(session, Action.EXPORT, now, actor=Actor.CLI, target=target, detail=detail)


def _filter_detail(wanted: ItemFilter, count: int) -> str:
    """As the staff API writes it: the count, then the filter as query parameters."""
    return f"rows={count} {urlencode(wanted.to_query())}".strip()


async def items_csv(session: AsyncSession, wanted: ItemFilter, output: str | None) -> int:
    """Written batch by batch, to the file or standard output."""
    out: BinaryIO = (
        await asyncio.to_thread(Path(output).open, "wb") if output else sys.stdout.buffer
    )

    async def write(chunk: bytes) -> None:
        await asyncio.to_thread(out.write, chunk)

    try:
        count = await write_items_csv(session, wanted, write)
    finally:
        if output:
            out.close()
        else:
            out.flush()
    if output:
        print(f"{count} items written to {output}", file=sys.stderr)
    return count


async def emit(body: bytes, output: str | None, what: str) -> None:
    if output:
        await asyncio.to_thread(Path(output).write_bytes, body)
        print(f"{what} written to {output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
