"""The CLI's database and staff subcommands."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from bot.config import Settings
from bot.runner import open_database
from messages.detection import detect
from staff.access import add_staff, list_staff
from staff.models import Role
from storage.base import utcnow
from storage.database import connect, current_revision


async def db_command(settings: Settings, command: str) -> int:
    # `upgrade` applies the migrations; `current` only reads.
    database = (
        await open_database(settings) if command == "upgrade" else connect(settings.database_url)
    )
    try:
        print(f"database at revision {await current_revision(database)}")
    finally:
        await database.dispose()
    return 0


async def staff_command(settings: Settings, args: argparse.Namespace) -> int:
    database = await open_database(settings)
    try:
        async with database.transaction() as session:
            if args.staff_command == "add":
                issued = await add_staff(session, args.name, Role(args.role), utcnow())
                print(f"Added {args.name} ({args.role}).")
                print(f"One-time link code: {issued.code}")
                print(
                    f"Valid until {issued.expires_at:%Y-%m-%d %H:%M} UTC. "
                    "They link their Telegram account by sending this code to the bot."
                )
            else:
                for member in await list_staff(session):
                    linked = "linked" if member.telegram_pseudonym else "not linked"
                    print(f"{member.id}\t{member.name}\t{member.role.value}\t{linked}")
    finally:
        await database.dispose()
    return 0


def detect_languages(settings: Settings, lines: TextIO, out: TextIO) -> int:
    """`{"language": code or null, "confidence": 0..1}` for each line, in the enabled set."""
    for line in lines:
        detection = detect(line.rstrip("\n"), settings.enabled_languages)
        record = {"language": detection.language, "confidence": round(detection.confidence, 3)}
        out.write(json.dumps(record) + "\n")
        out.flush()  # one answer per line, so that a pipe can be used interactively
    return 0
