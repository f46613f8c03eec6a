"""The `crisis-comms` command as a person runs it, in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

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
    assert "database at revision 0001" in upgraded.stdout
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


def test_run_without_token_serves_the_sandbox(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*COMMAND, "run"],
        env={"PATH": os.environ["PATH"], "CRISIS_DATA_DIR": str(tmp_path), "WEB_PORT": str(port)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"open http://127.0.0.1:{port}" in line, line
        deadline = time.monotonic() + 20
        page = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    page = response.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert "<html" in page.lower()
        assert (tmp_path / "crisis-comms.db").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - reported by the assert below
            process.kill()
            pytest.fail("crisis-comms run did not stop on SIGTERM")
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
