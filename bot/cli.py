"""The `crisis-comms` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot.config import ConfigError, Settings, load_settings
from bot.logs import configure
from staff.models import Role


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="crisis-comms", description="Two-way humanitarian communications bot."
    )
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the bot (no TELEGRAM_BOT_TOKEN: the local sandbox)")
    db = commands.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply the database migrations")
    db.add_parser("current", help="print the applied migration")
    staff = commands.add_parser("staff", help="staff members").add_subparsers(
        dest="staff_command", required=True
    )
    add = staff.add_parser("add", help="add a staff member and print their one-time link code")
    add.add_argument("--role", required=True, choices=[role.value for role in Role])
    add.add_argument("name", help="the staff member's name as colleagues know it")
    staff.add_parser("list", help="list staff members and roles")
    commands.add_parser(
        "detect-language",
        help="read one text per line on stdin, write one JSON object per line",
    )
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"crisis-comms: configuration error: {error}", file=sys.stderr)
        return 2
    configure(settings.log_level)
    try:
        return asyncio.run(dispatch(args, settings))
    except KeyboardInterrupt:
        return 130


async def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from bot import admin
    from bot.runner import run

    if args.command == "run":
        await run(settings)
        return 0
    if args.command == "detect-language":
        return admin.detect_languages(settings, sys.stdin, sys.stdout)
    if args.command == "db":
        return await admin.db_command(settings, args.db_command)
    return await admin.staff_command(settings, args)


if __name__ == "__main__":
    sys.exit(main())
