"""The CLI's database and staff subcommands."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TextIO

from bot.config import Settings
from bot.runner import deployment_key, open_database
from evacuation.manifests import (
    departure_points,
    format_summary,
    manifest_rows,
    summary,
    to_csv,
    to_xlsx,
)
from feedback.codes import agreement_report, format_agreement
from feedback.coding import default_coder
from feedback.review import format_response_times, response_times
from messages.detection import detect
from messages.importing import import_file
from privacy.retention import apply_retention, count_due
from staff.access import (
    StaffError,
    add_staff,
    change_role,
    deactivate,
    list_staff,
    reissue_code,
)
from staff.audit import Action, Actor, recent, record
from staff.models import Role, StaffMember
from staff.tokens import issue_token
from storage.base import utcnow
from storage.database import connect, current_revision

CLI = Actor.CLI


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
    if args.staff_command == "token":
        return await staff_token(settings, args.staff_id, args.days)
    database = await open_database(settings)
    try:
        async with database.transaction() as session:
            if args.staff_command == "add":
                now = utcnow()
                issued = await add_staff(session, args.name, Role(args.role), now)
                target = staff_target(issued.staff_id)
                await record(
                    session, Action.STAFF_ADDED, now, actor=CLI, target=target, detail=args.role
                )
                await record(session, Action.LINK_CODE, now, actor=CLI, target=target)
                print(f"Added {args.name} ({args.role}).")
                print(f"One-time link code: {issued.code}")
                print(
                    f"Valid until {issued.expires_at:%Y-%m-%d %H:%M} UTC. "
                    "They link their Telegram account by sending this code to the bot."
                )
            else:
                for member in await list_staff(session):
                    linked = "linked" if member.telegram_pseudonym else "not linked"
                    inactive = "" if member.active else "\tinactive"
                    print(f"{member.id}\t{member.name}\t{member.role.value}\t{linked}{inactive}")
    finally:
        await database.dispose()
    return 0


def staff_target(staff_id: int) -> str:
    """How the audit log names a staff member an event is about."""
    return f"staff:{staff_id}"


async def staff_change(settings: Settings, args: argparse.Namespace) -> int:
    """`staff role STAFF_ID ROLE`, `staff deactivate STAFF_ID` and `staff code STAFF_ID`, each
    recorded."""
    database = await open_database(settings)
    now = utcnow()
    target = staff_target(args.staff_id)
    try:
        async with database.transaction() as session:
            if args.staff_command == "role":
                member, former = await change_role(session, args.staff_id, Role(args.role))
                change = f"{former.value}>{member.role.value}"
                await record(
                    session, Action.ROLE_CHANGE, now, actor=CLI, target=target, detail=change
                )
                done = f"{member.name} (staff #{member.id}) is now {member.role.value}."
            elif args.staff_command == "code":
                issued = await reissue_code(session, args.staff_id, now)
                await record(session, Action.LINK_CODE, now, actor=CLI, target=target)
                done = (
                    f"One-time link code for staff #{issued.staff_id}: {issued.code}\n"
                    f"Valid until {issued.expires_at:%Y-%m-%d %H:%M} UTC."
                )
            else:
                member = await deactivate(session, args.staff_id)
                await record(session, Action.STAFF_DEACTIVATED, now, actor=CLI, target=target)
                done = f"{member.name} (staff #{member.id}) is deactivated: access ended."
    except StaffError as problem:
        print(f"crisis-comms: {problem}; nothing changed", file=sys.stderr)
        return 1
    finally:
        await database.dispose()
    print(done)
    return 0


async def staff_token(settings: Settings, staff_id: int, days: int) -> int:
    """Print a staff web API token; an unknown or inactive staff member gets none (status 1)."""
    database = await open_database(settings)
    try:
        async with database.transaction() as session:
            member = await session.get(StaffMember, staff_id)
            if member is None or not member.active:
                state = "unknown" if member is None else "not active"
                print(f"crisis-comms: staff member {staff_id} is {state}", file=sys.stderr)
                return 1
            issued = issue_token(deployment_key(settings), member, days=days, now=utcnow())
    finally:
        await database.dispose()
    print(issued.token)
    print(
        f"For {member.name} ({member.role.value}), valid until "
        f"{issued.expires_at:%Y-%m-%d %H:%M} UTC. Send it as: Authorization: Bearer <token>",
        file=sys.stderr,
    )
    return 0


async def import_command(settings: Settings, kind: str, file: str, by: str | None) -> int:
    """Import a file; commit only when every row is valid. Report to stderr, exit status 1."""
    database = await open_database(settings)
    try:
        async with database.sessions() as session:
            result = await import_file(session, kind, file, by=by, now=utcnow())
            if result.ok:
                await session.commit()
            # Closing the session without a commit rolls back: nothing is written.
    finally:
        await database.dispose()
    if result.report():
        print(result.report(), file=sys.stderr)
    if not result.ok:
        return 1
    print(result.summary())
    return 0


async def registrations_command(settings: Settings, args: argparse.Namespace) -> int:
    database = await open_database(settings)
    try:
        async with database.transaction() as session:
            if args.registrations_command == "summary":
                print(format_summary(await summary(session)))
                return 0
            if args.point is None:
                for point, count in await departure_points(session):
                    print(f"{point.key}\t{point.name}\t{count}")
                return 0
            rows = await manifest_rows(session, args.point)
            await record(
                session,
                Action.EXPORT,
                utcnow(),
                actor=CLI,
                target=f"manifest:{args.point}",
                detail=f"{args.format} rows={len(rows)}",
            )
    finally:
        await database.dispose()
    data = to_csv(rows) if args.format == "csv" else to_xlsx(rows, args.point)
    if args.output:
        await asyncio.to_thread(Path(args.output).write_bytes, data)
        print(f"{len(rows)} registrations written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0


def detect_languages(settings: Settings, lines: TextIO, out: TextIO) -> int:
    """`{"language": code or null, "confidence": 0..1}` for each line, in the enabled set."""
    for line in lines:
        detection = detect(line.rstrip("\n"), settings.enabled_languages)
        record = {"language": detection.language, "confidence": round(detection.confidence, 3)}
        out.write(json.dumps(record) + "\n")
        out.flush()  # one answer per line, so that a pipe can be used interactively
    return 0


def classify(settings: Settings, lines: TextIO, out: TextIO) -> int:
    """The coder's suggestion for each line, in the shape of ``Suggestion.to_json``."""
    coder = default_coder()
    for line in lines:
        text = line.rstrip("\n")
        language = detect(text, settings.enabled_languages).language if text.strip() else None
        out.write(json.dumps(coder.suggest(text, language).to_json(), ensure_ascii=False) + "\n")
        out.flush()
    return 0


async def feedback_command(settings: Settings, command: str) -> int:
    database = await open_database(settings)
    try:
        async with database.transaction() as session:
            if command == "agreement":
                print(format_agreement(await agreement_report(session)))
            else:
                for label, sensitive in (("ordinary", False), ("sensitive", True)):
                    times = await response_times(session, sensitive=sensitive)
                    print(f"{label}: {format_response_times(times)}")
    finally:
        await database.dispose()
    return 0


async def retention_command(settings: Settings, dry_run: bool) -> int:
    """Apply the retention period now (as the bot's hourly job does), or count what it would."""
    period = settings.services.retention
    database = await open_database(settings)
    try:
        if dry_run:
            async with database.transaction() as session:
                report = await count_due(session, utcnow(), period)
        else:
            report = await apply_retention(database, utcnow(), period, actor=CLI)
    finally:
        await database.dispose()
    verb = "Would erase" if dry_run else "Erased"
    print(f"{verb} (retention {period.days} days): {report.describe()}")
    return 0


async def audit_command(settings: Settings, args: argparse.Namespace) -> int:
    """The latest audit events, newest first, one per line (tab-separated)."""
    if args.action is not None and args.action not in {action.value for action in Action}:
        print(f"crisis-comms: unknown action {args.action!r}", file=sys.stderr)
        return 2
    database = await open_database(settings)
    try:
        async with database.transaction() as session:
            events = await recent(
                session, limit=args.limit, action=args.action, staff_id=args.staff
            )
            wanted = " ".join(
                f"{name}={value}"
                for name, value in (("action", args.action), ("staff", args.staff))
                if value is not None
            )
            await record(session, Action.AUDIT_VIEW, utcnow(), actor=CLI, detail=wanted or None)
    finally:
        await database.dispose()
    for event_id, event in events:
        staff = "-" if event.staff_id is None else f"#{event.staff_id} {event.staff_name or ''}"
        print(
            "\t".join(
                (
                    str(event_id),
                    f"{event.at:%Y-%m-%d %H:%M:%S} UTC",
                    event.actor,
                    staff.strip(),
                    event.action,
                    event.target or "-",
                    event.detail or "-",
                )
            )
        )
    return 0
