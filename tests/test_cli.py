"""The `crisis-comms` command as a person runs it, in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.botapi import LoopbackBotApi

COMMAND = [sys.executable, "-m", "bot.cli"]
ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        env={"PATH": os.environ["PATH"], **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_wrong_value_stops_with_one_line_and_status_2(tmp_path: Path) -> None:
    result = run_cli("run", env={"WEB_PORT": "eighty", "CRISIS_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "crisis-comms: configuration error: WEB_PORT: must be a port number (1-65535), not 'eighty'"
    ]


def test_db_upgrade_and_staff_add(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "CRISIS_DATA_DIR": str(tmp_path)}
    upgraded = run_cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "database at revision 0010" in upgraded.stdout
    added = run_cli("staff", "add", "--role", "responder", "Rana Haddad", env=env)
    assert added.returncode == 0, added.stderr
    assert re.search(r"One-time link code: STAFF-[A-Z0-9]{4}-[A-Z0-9]{4}", added.stdout)
    listed = run_cli("staff", "list", env=env)
    assert "Rana Haddad\tresponder\tnot linked" in listed.stdout
    bad_role = run_cli("staff", "add", "--role", "king", "X", env=env)
    assert bad_role.returncode == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def sandbox(data_dir: Path, port: int) -> Iterator[str]:
    """`crisis-comms run` with no token, in a subprocess; stopped with SIGTERM, as systemd does."""
    env = {"PATH": os.environ["PATH"], "CRISIS_DATA_DIR": str(data_dir), "WEB_PORT": str(port)}
    process = subprocess.Popen(
        [*COMMAND, "run"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert f"open http://127.0.0.1:{port}" in line, f"sandbox did not start: {line!r}"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("crisis-comms run did not stop on SIGTERM")
    assert process.returncode == 0, err.decode()


def test_run_without_token_serves_the_sandbox(tmp_path: Path) -> None:
    with sandbox(tmp_path, free_port()) as url:
        deadline = time.monotonic() + 20
        page = ""
        while not page and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/", timeout=5) as response:
                    page = response.read().decode()
            except OSError:
                time.sleep(0.2)
        assert "<html" in page.lower()
        assert (tmp_path / "crisis-comms.db").exists()


async def test_run_with_a_token_talks_to_the_configured_bot_api(tmp_path: Path) -> None:
    """Any Bot API implementation at TELEGRAM_API_BASE_URL works the same as Telegram."""
    token = "424242:another-bot-api-implementation"
    api = LoopbackBotApi(token=token, port=0)
    await api.start()
    env = {
        "PATH": os.environ["PATH"],
        "TELEGRAM_BOT_TOKEN": token,
        "TELEGRAM_API_BASE_URL": api.url,
        "PSEUDONYM_KEY": "p" * 40,
        "CRISIS_DATA_DIR": str(tmp_path),
    }
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "run", env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        user = api.add_user(first_name="Amina", language_code="fr")
        await api.send_text(user.id, "/start")
        [event] = await api.wait_for_bot(user.id, count=1, timeout=30)
        assert event.message is not None
        assert (event.message.text or "").startswith("Bienvenue."), "in the client's language"
        assert [c["command"] for c in api.commands()] == [
            "start",
            "menu",
            "myregistration",
            "subscriptions",
            "language",
            "privacy",
            "mydata",
            "delete",
            "help",
        ]
        french = api.commands(language_code="fr")
        assert french[0]["description"] != "Start again"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=20)
        await api.stop()
    assert process.returncode == 0, err
    assert token.split(":")[1] not in err.decode(), "the token must never reach the log"
    assert "PROTECTION_CHATS is not set" in err.decode(), "a deployment is told nobody is alerted"


def json_lines(command: str, texts: str, tmp_path: Path) -> list[dict[str, Any]]:
    """Run a line-in, JSON-out subcommand and read its answers."""
    result = subprocess.run(
        [*COMMAND, command],
        input=texts,
        env={"PATH": os.environ["PATH"], "CRISIS_DATA_DIR": str(tmp_path)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_detect_language_reads_lines_and_writes_json(tmp_path: Path) -> None:
    texts = "Where is the nearest shelter for my family?\nأين أقرب مأوى لعائلتي؟\n🙏🙏\n"
    answers = json_lines("detect-language", texts, tmp_path)
    assert [a["language"] for a in answers] == ["en", "ar", None]
    assert all(0.0 <= a["confidence"] <= 1.0 for a in answers)


def test_classify_reads_lines_and_writes_the_codes_as_json(tmp_path: Path) -> None:
    texts = (
        "We need water and food for the children in Carrefour\n"
        "Nou bezwen dlo ak manje\n"
        "My employer took my passport and I work without pay\n"
        "🙏🙏\n"
        "\n"
    )
    answers = json_lines("classify", texts, tmp_path)
    assert len(answers) == 5
    keys = {"language", "type", "mcof_sectors", "clusters", "urgent", "sensitive", "confidence"}
    assert all(set(a) == keys for a in answers)
    english, creole, trafficking, emoji, empty = answers
    assert english["language"] == "en" and {"wash", "food_security"} <= set(english["clusters"])
    assert creole["language"] == "ht" and "wash" in creole["clusters"]
    assert trafficking["sensitive"] and trafficking["urgent"] and 10 in trafficking["mcof_sectors"]
    assert emoji["type"] == empty["type"] == "other" and not emoji["clusters"]
    assert all(isinstance(s, int) and 1 <= s <= 15 for a in answers for s in a["mcof_sectors"])


async def test_report_exports_and_rebuild_counts(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    from storage.base import utcnow
    from storage.database import connect, upgrade
    from tests.test_exports import add_item, person

    database = connect(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    await upgrade(database)
    async with database.transaction() as session:
        amina = await person(session)
        await add_item(session, amina, "=cmd|' /C calc'!A0", utcnow(), sectors=[2])
        await add_item(session, amina, "he hit me", utcnow(), sectors=[10], sensitive=True)
    await database.dispose()
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "CRISIS_DATA_DIR": str(tmp_path)}

    text = run_cli("report", env=env)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("Feedback report: ") and "Gap flags: " in text.stdout
    assert "2 Shelter and Non-food Items: 1" in text.stdout and "he hit me" not in text.stdout
    as_json = run_cli("report", "--format", "json", "--include-sensitive", env=env)
    summary = json.loads(as_json.stdout)["summary"]
    assert summary["total"] == 2 and summary["include_sensitive"] is True
    assert run_cli("report", "--format", "markdown", env=env).stdout.startswith("# Feedback")
    both = run_cli("report", "--since", "2026-01-01", "--days", "3", env=env)
    assert both.returncode == 2 and "not both" in both.stderr
    assert run_cli("report", "--since", "yesterday", env=env).returncode == 2

    items = run_cli("export", "items", env=env)
    assert items.returncode == 0, items.stderr
    lines = items.stdout.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("reference,created_at,") and len(lines) == 2
    assert ",'=cmd|' /C calc'!A0,a1b2c3" in lines[1] and "he hit me" not in items.stdout
    sheet_path = tmp_path / "items.xlsx"
    written = run_cli(
        "export", "items", "--format", "xlsx", "--include-sensitive", "-o", str(sheet_path), env=env
    )
    assert written.returncode == 0 and "2 items written" in written.stderr
    sheet = load_workbook(sheet_path).active
    assert sheet is not None and sheet.max_row == 3
    aggregates = run_cli("export", "aggregates", "--by", "sector", env=env)
    rows = aggregates.stdout.lstrip("\ufeff").splitlines()
    assert rows[1].startswith("#date,#adm1+name,#adm1+code,#sector+code")
    assert len(rows) == 3 and ",2,Shelter and Non-food Items," in rows[2], "never sector 10"

    rebuilt = run_cli("feedback", "rebuild-counts", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.strip() == "Counts rebuilt from 2 items: 4 rows."


def test_staff_password_is_read_from_stdin_and_stored_hashed(tmp_path: Path) -> None:
    import sqlite3

    from staff.passwords import verify_password

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "CRISIS_DATA_DIR": str(tmp_path)}
    assert run_cli("staff", "add", "--role", "responder", "Rana Haddad", env=env).returncode == 0
    secret = "a long enough passphrase"

    def password(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMMAND, "staff", "password", *args],
            env={"PATH": os.environ["PATH"], **env},
            cwd=ROOT,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    short = password("1", stdin="short\n")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr
    unknown = password("99", stdin=f"{secret}\n")
    assert unknown.returncode == 1 and "staff member 99 is unknown" in unknown.stderr
    assert password("1", secret, stdin="").returncode == 2, "never a password in argv"
    done = password("1", stdin=f"{secret}\n")
    assert done.returncode == 0, done.stderr
    assert "Password set for Rana Haddad (staff #1)" in done.stdout
    assert secret not in done.stdout + done.stderr
    with sqlite3.connect(tmp_path / "cli.db") as connection:
        [(stored,)] = connection.execute("SELECT password_hash FROM staff_members").fetchall()
    assert stored.startswith("$argon2id$") and verify_password(stored, secret)
