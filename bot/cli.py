"""The `crisis-comms` command."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from dataclasses import replace

from bot import report_commands
from bot.config import ConfigError, Settings, load_settings
from bot.logs import configure
from staff.models import Role
from staff.tokens import DEFAULT_DAYS, MAX_DAYS


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
    add.add_argument("name", type=staff_name, help="the staff member's name as colleagues know it")
    staff.add_parser("list", help="list staff members and roles")
    token = staff.add_parser(
        "token",
        help="print a bearer token for the staff web API (/api)",
        description="The token is signed with a key derived from the pseudonym key and "
        "expires after --days. It stops working at once when the staff member is deactivated.",
    )
    token.add_argument("staff_id", type=int, help="the id shown by `staff list`")
    token.add_argument(
        "--days",
        type=token_days,
        default=DEFAULT_DAYS,
        help=f"1 to {MAX_DAYS} (default {DEFAULT_DAYS})",
    )
    password = staff.add_parser(
        "password",
        help="set a staff member's dashboard password, read from standard input",
        description="Asks twice on a terminal; otherwise reads the first line of standard "
        "input. Never pass a password as an argument: it would stay in the shell history. "
        "The member then logs in to /dashboard with their staff id and this password.",
    )
    password.add_argument("staff_id", type=int, help="the id shown by `staff list`")
    new_role = staff.add_parser("role", help="give a staff member another role (recorded)")
    new_role.add_argument("staff_id", type=int, help="the id shown by `staff list`")
    new_role.add_argument("role", choices=[role.value for role in Role])
    deactivate = staff.add_parser(
        "deactivate",
        help="end a staff member's access at once: Telegram, dashboard and API (recorded)",
    )
    deactivate.add_argument("staff_id", type=int, help="the id shown by `staff list`")
    code = staff.add_parser(
        "code",
        help="print a new one-time link code for an active staff member (recorded)",
        description="For a code that expired unused, or a staff member on a new phone: "
        "the account that sends the new code becomes the member's linked account.",
    )
    code.add_argument("staff_id", type=int, help="the id shown by `staff list`")
    importing = commands.add_parser(
        "import",
        help="import shelters, consulates or places from CSV (HXL tags welcome) or JSON",
        description="All or nothing: with any problem nothing is imported, and every problem "
        "is reported by its spreadsheet row. Rows are matched to stored records by id.",
    )
    importing.add_argument("import_kind", choices=["shelters", "consulates", "places"])
    importing.add_argument("file", help="a .csv or .json file")
    importing.add_argument(
        "--by", help='who the records are attributed to (default: "import:FILENAME")'
    )
    registrations = commands.add_parser(
        "registrations", help="evacuation and transport registrations"
    ).add_subparsers(dest="registrations_command", required=True)
    registrations.add_parser(
        "summary", help="counts by departure point, nationality and special need"
    )
    manifest = registrations.add_parser(
        "manifest",
        help="the manifest of one departure point, for the transport partner",
        description="Without POINT: list the departure points with registrations. The file "
        "holds phone numbers: share it only with the transport partner.",
    )
    manifest.add_argument("point", nargs="?", help="the departure point's id (or 'unassigned')")
    manifest.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    manifest.add_argument("--output", "-o", help="file to write (default: standard output)")
    commands.add_parser(
        "detect-language",
        help="read one text per line on stdin, write one JSON object per line",
    )
    commands.add_parser(
        "classify",
        help="code one message per line on stdin: one JSON object per line (type, MCOF "
        "sectors, clusters, urgent, sensitive, confidence)",
    )
    feedback = commands.add_parser("feedback", help="feedback items").add_subparsers(
        dest="feedback_command", required=True
    )
    feedback.add_parser(
        "agreement", help="how often responders kept the suggested codes when correcting"
    )
    feedback.add_parser(
        "response-times", help="time from arrival to first answer, ordinary and sensitive items"
    )
    feedback.add_parser(
        "rebuild-counts", help="recompute the rollup counts the reports read from the items"
    )
    sender = commands.add_parser(
        "sender",
        help="send queued broadcasts (extra sender processes beside the bot, PostgreSQL)",
        description="Sends broadcast messages from the outbox until stopped (SIGTERM/Ctrl+C). "
        "Every sender process shares the outbox and Telegram's overall limit; give each one a "
        "name of its own (and set SENDER_IN_BOT=false on the bot if only these should send).",
    )
    sender.add_argument("--name", help="this process's name (default: SENDER_NAME)")
    worker = commands.add_parser(
        "worker",
        help="process the webhook's inbox (extra worker processes beside the bot, PostgreSQL)",
        description="Processes updates kept by the webhook until stopped (SIGTERM/Ctrl+C). "
        "Workers share the inbox: each chat's updates go in order, through one worker at a "
        "time; workers can be added and stopped while the others run. Needs "
        "TELEGRAM_MODE=webhook and the bot's settings.",
    )
    worker.add_argument("--name", help="this process's name (default: WORKER_NAME)")
    worker.add_argument(
        "--port", type=int, help="serve /healthz, /readyz and /metrics on this port"
    )
    retention = commands.add_parser(
        "retention",
        help="erase personal data older than RETENTION_DAYS now (the bot does it hourly)",
        description="Inactive contacts are erased, older messages anonymised (codes kept) and "
        "stale registrations deleted; the rollup counts stay. Prints the counts.",
    )
    retention.add_argument("--dry-run", action="store_true", help="only count what would be erased")
    audit = commands.add_parser(
        "audit", help="the latest audit log events: views, exports, changes, erasures"
    )
    audit.add_argument("--limit", type=audit_limit, default=50, help="how many (default 50)")
    audit.add_argument("--action", help="only this action (e.g. export, role_change, login)")
    audit.add_argument("--staff", type=int, help="only what this staff id did")
    report_commands.add_commands(commands)
    return root


def audit_limit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 10_000:
        raise argparse.ArgumentTypeError("must be a whole number, 1 to 10000")
    return int(value)


def staff_name(value: str) -> str:
    """One line of at most 120 characters (the column's size), as lists and logs show it."""
    name = " ".join(value.split())
    if not name or len(name) > 120 or not name.isprintable():
        raise argparse.ArgumentTypeError("must be 1 to 120 printable characters on one line")
    return name


def token_days(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be a whole number of days, 1 to {MAX_DAYS}")
    return int(value)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"crisis-comms: configuration error: {error}", file=sys.stderr)
        return 2
    configure(settings.log_level, log_format=settings.log_format)
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
    if args.command == "classify":
        return admin.classify(settings, sys.stdin, sys.stdout)
    if args.command in ("report", "export") or (
        args.command == "feedback" and args.feedback_command == "rebuild-counts"
    ):
        return await report_commands.command(settings, args)
    if args.command == "feedback":
        return await admin.feedback_command(settings, args.feedback_command)
    if args.command == "db":
        return await admin.db_command(settings, args.db_command)
    if args.command == "registrations":
        return await admin.registrations_command(settings, args)
    if args.command == "import":
        return await admin.import_command(settings, args.import_kind, args.file, args.by)
    if args.command == "worker":
        from bot.runner import work

        name = (args.name or "")[:64] or settings.services.worker_name
        named = replace(settings.services, worker_name=name)
        return await work(replace(settings, services=named), args.port)
    if args.command == "sender":
        from bot.sender import command as sender_command

        return await sender_command(settings, (args.name or "")[:64] or None)
    if args.command == "staff" and args.staff_command == "password":
        return await staff_password(settings, args.staff_id)
    if args.command == "staff" and args.staff_command in ("role", "deactivate", "code"):
        return await admin.staff_change(settings, args)
    if args.command == "retention":
        return await admin.retention_command(settings, args.dry_run)
    if args.command == "audit":
        return await admin.audit_command(settings, args)
    return await admin.staff_command(settings, args)


def read_password() -> str | None:
    """From a terminal: asked twice, not echoed (None if the two differ). Otherwise the
    first line of standard input, as a script or a password manager pipes it."""
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        return first if getpass.getpass("Again: ") == first else None
    return sys.stdin.readline().rstrip("\r\n")


async def staff_password(settings: Settings, staff_id: int) -> int:
    from bot.runner import open_database
    from staff.audit import Action, Actor, record
    from staff.passwords import PasswordError, set_password
    from storage.base import utcnow

    password = read_password()
    if password is None:
        print("crisis-comms: the passwords differ; nothing changed", file=sys.stderr)
        return 1
    database = await open_database(settings)
    try:
        async with database.transaction() as session:
            member = await set_password(session, staff_id, password)
            await record(
                session,
                Action.PASSWORD_SET,
                utcnow(),
                actor=Actor.CLI,
                target=f"staff:{member.id}",
            )
    except PasswordError as problem:
        print(f"crisis-comms: {problem}; nothing changed", file=sys.stderr)
        return 1
    finally:
        await database.dispose()
    print(f"Password set for {member.name} (staff #{member.id}); their other sessions ended.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
