"""The operations endpoints on the real servers of bot/runner.py: /healthz, /readyz, /metrics.

Each server a process runs (the webhook's, the polling mode's staff API server, the
sandbox's) is built as `crisis-comms run` builds it, with a Probe on a real database.
/metrics is parsed as Prometheus reads it; the queue depths it shows are checked against
rows put in the inbox and the outbox, its counters against updates posted to the webhook,
and it must hold nothing a person sent. `crisis-comms worker` runs as a process: it refuses
outside webhook mode, and in webhook mode serves the endpoints on --port.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from bot.cli import parser
from bot.config import SANDBOX_TOKEN, Settings, load_settings
from bot.dashboard import Dashboard
from bot.metrics import Metrics
from bot.operations import Probe
from bot.runner import api_server_app, sandbox_server, webhook_server_app
from bot.sandbox.botapi import LoopbackBotApi
from bot.staff_api import StaffApi
from bot.webhook import SECRET_HEADER, WEBHOOK_PATH, InboxKeeper
from inbox import updates as inbox
from messages.outbox import OutboxMessage, OutboxState
from storage.database import Database, connect
from tests.broadcast_fixtures import add_subscriber, queued_broadcast
from tests.test_cli import COMMAND, ROOT, free_port, run_cli
from tests.test_web_security import assert_protected

KEY = b"operations-test-key-0123456789abcdef"
SECRET = "operations-webhook-secret"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
Kind = Literal["webhook", "api", "sandbox"]
KINDS: list[Kind] = ["webhook", "api", "sandbox"]
Client = TestClient[web.Request, web.Application]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# What a person might write and be called: none of it may reach /metrics.
NAME, SURNAME, USERNAME = "Zainabu", "Okonkwo-Mbeki", "zainabu_ok"
TEXT = "The bridge at Kolwezi collapsed, 14 people on the roof"
CHAT = 7_392_018_465


def an_update(update_id: int, chat: int = CHAT, text: str = TEXT) -> dict[str, Any]:
    person = {"id": chat, "is_bot": False, "first_name": NAME, "last_name": SURNAME}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": chat, "type": "private", "first_name": NAME, "username": USERNAME},
            "from": {**person, "username": USERNAME},
            "text": text,
        },
    }


def server_app(kind: Kind, probe: Probe, database: Database, settings: Settings) -> web.Application:
    """The server of `kind`, built as bot/runner.py builds it for `crisis-comms run`."""
    staff_api = StaffApi(database, KEY, settings)
    dashboard = Dashboard(database, KEY, settings)
    if kind == "webhook":
        keep = InboxKeeper(database, lambda: NOW, probe.metrics)
        return webhook_server_app(keep, SECRET, staff_api, dashboard, probe)
    if kind == "api":
        return api_server_app(staff_api, dashboard, probe)
    return sandbox_server(settings, staff_api, dashboard, probe).app


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def running() -> asyncio.Event:
    """Whether the bot counts as started (runner.py's `ready`); set unless a test clears it."""
    event = asyncio.Event()
    event.set()
    return event


@pytest.fixture(params=KINDS)
async def client(
    request: pytest.FixtureRequest,
    database: Database,
    settings: Settings,
    metrics: Metrics,
    running: asyncio.Event,
) -> AsyncIterator[Client]:
    app = server_app(request.param, Probe(database, metrics, running.is_set), database, settings)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def webhook(
    database: Database, settings: Settings, metrics: Metrics
) -> AsyncIterator[Client]:
    app = server_app("webhook", Probe(database, metrics), database, settings)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def scrape(client: Client) -> tuple[Samples, dict[str, str], str]:
    """/metrics parsed as Prometheus parses it: samples by (name, labels), family types, body."""
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert_protected(response, "/metrics")
    body = await response.text()
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(body):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types, body


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a labelled counter never incremented (it has no sample yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def post_update(client: Client, data: dict[str, Any]) -> int:
    response = await client.post(WEBHOOK_PATH, json=data, headers={SECRET_HEADER: SECRET})
    assert_protected(response, f"webhook → {response.status}")
    return response.status


# --- /healthz and /readyz -------------------------------------------------------------------


async def test_healthz_and_readyz_answer_200_on_every_server(client: Client) -> None:
    for path, text in (("/healthz", "ok\n"), ("/readyz", "ready\n")):
        response = await client.get(path)
        assert (response.status, await response.text()) == (200, text), path
        assert_protected(response, path)


async def test_readyz_is_503_until_started_and_again_when_stopping(
    client: Client, running: asyncio.Event
) -> None:
    running.clear()  # starting
    not_yet = await client.get("/readyz")
    assert not_yet.status == 503
    assert_protected(not_yet, "/readyz 503")
    assert (await client.get("/healthz")).status == 200, "alive, only not ready"
    running.set()
    assert (await client.get("/readyz")).status == 200
    running.clear()  # stopping
    assert (await client.get("/readyz")).status == 503


def unreachable_sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}"  # a folder: SQLite cannot open it


def unreachable_postgres(_tmp_path: Path) -> str:
    return "postgresql+asyncpg://crisis:wrong@127.0.0.1:1/crisis"  # nothing listens on port 1


@pytest.mark.parametrize("url_of", [unreachable_sqlite, unreachable_postgres])
@pytest.mark.parametrize("kind", KINDS)
async def test_readyz_is_503_when_the_database_does_not_answer(
    kind: Kind,
    url_of: Callable[[Path], str],
    database: Database,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """And /metrics still serves this process's counters, counting the failed read."""
    down = connect(url_of(tmp_path))
    metrics = Metrics()
    metrics.received.labels(outcome="new").inc(3)
    app = server_app(kind, Probe(down, metrics), database, settings)
    try:
        async with TestClient(TestServer(app)) as client:
            ready = await client.get("/readyz")
            assert (ready.status, await ready.text()) == (503, "database unreachable\n")
            assert_protected(ready, "/readyz 503")
            assert (await client.get("/healthz")).status == 200
            samples, _, _ = await scrape(client)
            assert value(samples, "crisis_updates_received_total", outcome="new") == 3
            assert value(samples, "crisis_errors_total", kind="metrics") == 1
            assert ("crisis_inbox_depth", frozenset({("state", "pending")})) not in samples
    finally:
        await down.dispose()


# --- /metrics -------------------------------------------------------------------------------


async def test_metrics_is_prometheus_text_with_every_metric(client: Client) -> None:
    samples, types, _ = await scrape(client)
    assert {
        "crisis_updates_received": "counter",
        "crisis_updates_processed": "counter",
        "crisis_handler_latency_seconds": "histogram",
        "crisis_errors": "counter",
        "crisis_inbox_depth": "gauge",
        "crisis_outbox_depth": "gauge",
    }.items() <= types.items()
    assert value(samples, "crisis_handler_latency_seconds_count") == 0
    assert value(samples, "crisis_inbox_depth", state="pending") == 0
    assert value(samples, "crisis_inbox_depth", state="claimed") == 0
    assert value(samples, "crisis_outbox_depth") == 0


async def test_metrics_show_the_inbox_and_outbox_depths(client: Client, database: Database) -> None:
    # Inbox: 3 updates of chat 1001, 2 of chat 1002, 1 of chat 1003; a worker claims one chat
    # (the oldest: all of 1001's), then one of them is finished.
    rows = [an_update(n, chat) for n, chat in enumerate([1001, 1002, 1001, 1003, 1001, 1002])]
    async with database.transaction() as session:
        assert await inbox.receive(session, rows, NOW) == 6
        assert await inbox.receive(session, rows[:2], NOW) == 0, "a repeat is kept once"
    async with database.transaction() as session:
        claimed = await inbox.claim(session, "worker-1", NOW, chats=1)
    assert [row.update_id for row in claimed] == [0, 2, 4]
    async with database.transaction() as session:
        assert await inbox.finish(session, "worker-1", 0, inbox.Outcome.OK, NOW)
    # Outbox: a broadcast to 4 subscribers; one sent, one being sent, one failed.
    async with database.transaction() as session:
        for number in range(4):
            await add_subscriber(session, number)
        broadcast = await queued_broadcast(session)
        for state, count in ((OutboxState.SENT, 1), (OutboxState.SENDING, 1)):
            ids = (
                await session.scalars(
                    select(OutboxMessage.id)
                    .where(OutboxMessage.broadcast_id == broadcast.id)
                    .where(OutboxMessage.state == OutboxState.QUEUED.value)
                    .limit(count)
                )
            ).all()
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(state=state.value)
            )
    samples, _, _ = await scrape(client)
    assert value(samples, "crisis_inbox_depth", state="pending") == 3  # chats 1002, 1003
    assert value(samples, "crisis_inbox_depth", state="claimed") == 2  # 1001's unfinished
    assert value(samples, "crisis_outbox_depth") == 3  # queued and sending, not sent
    async with database.transaction() as session:
        await inbox.finish(session, "worker-1", 2, inbox.Outcome.ERROR, NOW)
        await inbox.finish(session, "worker-1", 4, inbox.Outcome.OK, NOW)
    samples, _, _ = await scrape(client)
    assert value(samples, "crisis_inbox_depth", state="claimed") == 0, "read at each scrape"


async def test_the_webhook_counts_new_and_repeated_updates(
    webhook: Client, database: Database
) -> None:
    samples, _, _ = await scrape(webhook)
    assert value(samples, "crisis_updates_received_total", outcome="new") == 0
    assert await post_update(webhook, an_update(5001)) == 200
    samples, _, _ = await scrape(webhook)
    assert value(samples, "crisis_updates_received_total", outcome="new") == 1
    assert value(samples, "crisis_updates_received_total", outcome="repeat") == 0
    assert value(samples, "crisis_inbox_depth", state="pending") == 1
    assert await post_update(webhook, an_update(5001)) == 200  # Telegram delivers it again
    samples, _, _ = await scrape(webhook)
    assert value(samples, "crisis_updates_received_total", outcome="new") == 1
    assert value(samples, "crisis_updates_received_total", outcome="repeat") == 1
    assert value(samples, "crisis_inbox_depth", state="pending") == 1, "kept once"
    assert await post_update(webhook, an_update(5002)) == 200
    refused = await webhook.post(WEBHOOK_PATH, json=an_update(5003))  # no secret
    assert refused.status == 403
    samples, _, _ = await scrape(webhook)
    assert value(samples, "crisis_updates_received_total", outcome="new") == 2
    assert value(samples, "crisis_inbox_depth", state="pending") == 2


async def test_metrics_hold_no_personal_data(webhook: Client) -> None:
    for update_id in (6001, 6002, 6001):
        assert await post_update(webhook, an_update(update_id)) == 200
    samples, _, body = await scrape(webhook)
    assert value(samples, "crisis_updates_received_total", outcome="repeat") == 1
    for private in (NAME, SURNAME, USERNAME, TEXT, "Kolwezi", str(CHAT), "6001", "6002"):
        assert private not in body, private
    labels = {label for name, labels in samples for label in labels}
    assert {key for key, _ in labels} <= {"outcome", "kind", "state", "le"}


# --- crisis-comms worker ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode",
    [
        {},  # the sandbox: no token, polling
        {
            "TELEGRAM_MODE": "polling",
            "TELEGRAM_BOT_TOKEN": "4242:abcdefghij",
            "PSEUDONYM_KEY": "p" * 40,
        },
    ],
    ids=["sandbox", "polling"],
)
def test_the_worker_refuses_outside_webhook_mode(mode: dict[str, str], tmp_path: Path) -> None:
    env = {"CRISIS_DATA_DIR": str(tmp_path), **mode}
    result = run_cli("worker", "--name", "w1", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "TELEGRAM_MODE=webhook" in result.stdout + result.stderr
    assert not (tmp_path / "crisis-comms.db").exists(), "refused before opening the database"


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    """Poll until the worker answers ready (start-up applies the migrations first)."""
    for _ in range(300):
        if process.returncode is not None:
            pytest.fail(f"the worker stopped: {process.returncode}")
        try:
            if (await get(f"{url}/readyz"))[0] == 200:
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    pytest.fail("the worker never became ready")


async def test_a_worker_process_serves_the_endpoints_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    """`crisis-comms worker --port`, as systemd runs it: ready, metrics, JSON logs, and a
    clean stop with status 0 on SIGTERM."""
    api = LoopbackBotApi(token=SANDBOX_TOKEN, port=0)
    await api.start()
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "TELEGRAM_BOT_TOKEN": SANDBOX_TOKEN,
        "TELEGRAM_API_BASE_URL": api.url,
        "TELEGRAM_MODE": "webhook",
        "WEBHOOK_URL": "https://bot.example.org",
        "WEBHOOK_SECRET": SECRET,
        "PSEUDONYM_KEY": "p" * 40,
        "CRISIS_DATA_DIR": str(tmp_path),
        "LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "worker", "--name", "ops-test", "--port", str(port),
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, process)
        assert await get(f"{url}/healthz") == (200, "ok\n")
        status, body = await get(f"{url}/metrics")
        assert status == 200
        names = {family.name for family in text_string_to_metric_families(body)}
        assert {"crisis_inbox_depth", "crisis_updates_processed"} <= names
        assert (await get(f"{url}/telegram/webhook"))[0] == 404, "a worker has no webhook"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
        await api.stop()
    assert process.returncode == 0, err.decode()
    lines = err.decode().splitlines()
    logged = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(entry["message"] == "worker running" for entry in logged), lines
    assert SANDBOX_TOKEN.split(":")[1] not in err.decode()


# --- the deployment files -------------------------------------------------------------------

DEPLOY = ROOT / "deploy"
_SETTING = re.compile(r"""(?:get|positive|whole|hours)\(\s*"([A-Z][A-Z0-9_]+)\"""")
_LINE = re.compile(r"^(#?)([A-Z][A-Z0-9_]+)=(.*)$")


def example_lines() -> dict[str, tuple[bool, str]]:
    """deploy/env.example: each variable, whether it is set (not commented out), its value."""
    found: dict[str, tuple[bool, str]] = {}
    for line in (DEPLOY / "env.example").read_text("utf-8").splitlines():
        if match := _LINE.match(line):
            commented, name, raw = match.groups()
            if not (commented and found.get(name, (False, ""))[0]):  # an alternative shown
                found[name] = (not commented, raw.strip().strip('"'))
    return found


def test_the_example_environment_file_names_every_setting_and_loads() -> None:
    read = set(_SETTING.findall((ROOT / "bot" / "config.py").read_text("utf-8")))
    assert len(read) > 40, "the pattern still finds the settings"
    example = example_lines()
    assert read - set(example) == set(), "add these to deploy/env.example"
    assert set(example) - read == set(), "deploy/env.example names unknown variables"
    active = {name: value for name, (on, value) in example.items() if on}
    settings = load_settings(active)
    assert (settings.mode, settings.log_format) == ("webhook", "json")
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert not settings.services.sender_in_bot
    assert {"WEB_PORT", "WORKER_NAME", "SENDER_NAME"}.isdisjoint(active), "one per process"
    # Every default shown commented out is a valid value, and is the default.
    shown = {name: value for name, (on, value) in example.items() if not on and value}
    everything = load_settings({**active, **shown})
    assert everything.services == settings.services and everything.crisis == settings.crisis
    assert everything.enabled_languages == settings.enabled_languages


def test_the_procfile_runs_real_commands(tmp_path: Path) -> None:
    """Each line through a shell, as Procfile runners run it, with `crisis-comms` replaced by
    a script that prints what it was given; the arguments must parse as the CLI's."""
    fake = tmp_path / "crisis-comms"
    fake.write_text('#!/bin/sh\necho "WEB_PORT=${WEB_PORT:-}"\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    commands = {}
    for line in (DEPLOY / "Procfile").read_text("utf-8").splitlines():
        if line and not line.startswith("#"):
            kind, command = line.split(":", 1)
            commands[kind] = command.strip()
    assert set(commands) == {"web", "worker", "sender"}
    for port in (None, "5100"):
        env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", **({"PORT": port} if port else {})}
        for kind, command in commands.items():
            shell = subprocess.run(
                ["sh", "-c", command], env=env, capture_output=True, text=True, check=True
            )
            web_port, *args = shell.stdout.splitlines()
            parsed = parser().parse_args(args)
            assert parsed.command == {"web": "run"}.get(kind, kind)
            if kind == "web":
                assert web_port == f"WEB_PORT={port or 8080}"
            if kind == "worker":
                assert parsed.port == (int(port) if port else None)
