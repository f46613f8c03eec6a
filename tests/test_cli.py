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
    assert "database at revision 0007" in upgraded.stdout
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
            "language",
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
