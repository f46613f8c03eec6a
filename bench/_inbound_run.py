"""Shared machinery of bench/inbound.py and bench/faults.py: processes, databases, posting.

- processes: the Bot API stub (bench/_inbound_stub.py), the echo bot (bench/_inbound_echo.py)
  and our bot as real `crisis-comms run` (webhook + worker) and `crisis-comms worker`
  processes, each with its stderr in a log file, its memory read from /proc/<pid>/status;
- databases: a fresh SQLite file, or a fresh PostgreSQL database created (and later
  dropped) through an admin URL; migrations applied and the demo data set loaded before the
  bot starts (the shelters, places and missions the mix looks up);
- posting: each person's updates in order, the next one only after the webhook's 200 (as
  Telegram delivers a chat's updates), many people at once; an update whose 200 does not come
  (503, another status, a timeout, a refused connection) is posted again with the same
  update_id, as Telegram does;
- reading: the inbox rows (received_at, processed_at, attempts), the handler latency
  histogram of each process's /metrics.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from _inbound_mix import Script
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from inbox.updates import InboxUpdate
from messages.demo import load_demo_data
from storage.database import Database, connect, upgrade

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TOKEN = "123456:bench-token"
SECRET = "bench-webhook-secret-0123456789"
PSEUDONYM_KEY = "bench-pseudonym-key-not-secret-0123456789abcdef"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0)  # Telegram's own back-off is longer; this keeps load on


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int  # where /readyz and /metrics answer
    log: Path
    _handle: TextIO | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def memory(self) -> tuple[float, float]:
        """(VmHWM, VmRSS) in MB, from /proc/<pid>/status; NaN once the process is gone."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return math.nan, math.nan
        values = dict(re.findall(r"^(VmHWM|VmRSS):\s+(\d+) kB", status, re.MULTILINE))
        return int(values["VmHWM"]) / 1024, int(values["VmRSS"]) / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time so far, from /proc/<pid>/stat."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self._handle is not None:
            self._handle.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def spawn(name: str, command: list[str], port: int, folder: Path, env: dict[str, str]) -> Proc:
    log = folder / f"{name}.log"
    handle = log.open("a")
    popen = subprocess.Popen(
        command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=HERE.parent
    )
    return Proc(name, popen, port, log, handle)


def start_stub(folder: Path) -> Proc:
    port = free_port()
    command = [sys.executable, str(HERE / "_inbound_stub.py"), "--port", str(port)]
    return spawn("stub", command, port, folder, dict(os.environ))


def start_echo(folder: Path, stub: Proc, concurrency: int) -> Proc:
    port = free_port()
    command = [
        sys.executable, str(HERE / "_inbound_echo.py"), "--port", str(port),
        "--api", f"http://127.0.0.1:{stub.port}", "--token", TOKEN, "--secret", SECRET,
        "--concurrency", str(concurrency),
    ]  # fmt: skip
    return spawn("echo", command, port, folder, dict(os.environ))


def bot_env(
    database_url: str, stub: Proc, web_port: int, folder: Path, **extra: str
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TELEGRAM_MODE="webhook",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{stub.port}",
        WEBHOOK_URL=f"http://127.0.0.1:{web_port}",
        WEBHOOK_SECRET=SECRET,
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(web_port),
        DATABASE_URL=database_url,
        PSEUDONYM_KEY=PSEUDONYM_KEY,
        CRISIS_DATA_DIR=str(folder / "data"),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def crisis_comms(env: dict[str, str]) -> list[str]:
    """The command, as installed."""
    del env
    return [str(BIN / "crisis-comms")]


def start_web(folder: Path, env: dict[str, str], profile: Path | None = None) -> Proc:
    """`crisis-comms run` in webhook mode: the webhook server and one worker (under
    cProfile, writing to `profile` when it stops, if given)."""
    port = int(env["WEB_PORT"])
    command = [*crisis_comms(env), "run"]
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
    return spawn("web", command, port, folder, env | {"WORKER_NAME": "web"})


def start_worker(folder: Path, env: dict[str, str], name: str) -> Proc:
    port = free_port()
    command = [*crisis_comms(env), "worker", "--name", name, "--port", str(port)]
    return spawn(name, command, port, folder, env)


async def wait_ready(procs: Sequence[Proc], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        for proc in procs:
            while True:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited:\n{proc.log_text()[-3000:]}")
                try:
                    async with session.get(f"http://127.0.0.1:{proc.port}/readyz") as answer:
                        if answer.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{proc.name} not ready:\n{proc.log_text()[-3000:]}")
                await asyncio.sleep(0.2)


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        return await answer.json()


async def get_text(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        return await answer.text()


# --- databases ------------------------------------------------------------------------------


def pg_async_url(url: str) -> str:
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url.removeprefix(plain)
    return url


async def create_pg_database(admin_url: str, name: str) -> str:
    admin = create_async_engine(pg_async_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    url = make_url(pg_async_url(admin_url)).set(database=name)
    return url.render_as_string(hide_password=False)


async def drop_pg_database(admin_url: str, name: str) -> None:
    admin = create_async_engine(pg_async_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def prepare_database(url: str) -> Database:
    """Migrations and the demo data (shelters, places, missions), before any bot starts."""
    database = connect(url)
    await upgrade(database)
    async with database.transaction() as session:
        await load_demo_data(session, datetime.now(UTC))
    return database


@dataclass(frozen=True)
class InboxRow:
    update_id: int
    chat_key: int
    received_at: datetime
    processed_at: datetime | None
    attempts: int
    outcome: str | None
    claimed_by: str | None


async def inbox_rows(database: Database) -> list[InboxRow]:
    u = InboxUpdate
    query = select(
        u.update_id, u.chat_key, u.received_at, u.processed_at, u.attempts, u.outcome, u.claimed_by
    )
    async with database.transaction() as session:
        return [InboxRow(*row) for row in await session.execute(query)]


async def open_count(database: Database) -> tuple[int, int]:
    """(all rows, rows not processed yet)."""
    async with database.transaction() as session:
        total = await session.scalar(select(func.count()).select_from(InboxUpdate))
        left = await session.scalar(
            select(func.count()).select_from(InboxUpdate).where(InboxUpdate.processed_at.is_(None))
        )
    return int(total or 0), int(left or 0)


async def wait_drained(database: Database, expected: int, seconds: float) -> bool:
    """Until `expected` rows are in the inbox and none is open; False after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            total, left = await open_count(database)
        except Exception:  # the database may be restarting (bench/faults.py)
            total, left = -1, -1
        if total >= expected and left == 0:
            return True
        await asyncio.sleep(0.2)
    return False


# --- metrics --------------------------------------------------------------------------------

BUCKET = re.compile(r'^crisis_handler_latency_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', re.M)


def latency_buckets(metrics_text: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the handler latency histogram."""
    return [(float(le), float(count)) for le, count in BUCKET.findall(metrics_text)]


def add_buckets(*histograms: list[tuple[float, float]]) -> list[tuple[float, float]]:
    summed: dict[float, float] = {}
    for histogram in histograms:
        for bound, count in histogram:
            summed[bound] = summed.get(bound, 0.0) + count
    return sorted(summed.items())


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """As Prometheus' histogram_quantile: linear within the bucket holding the rank."""
    if not buckets or buckets[-1][1] == 0:
        return math.nan
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


# --- posting --------------------------------------------------------------------------------


@dataclass
class Posted:
    """One update as posted: its chat, when it went out first and when its 200 came."""

    update_id: int
    chat: int
    kind: str
    first_sent: float  # time.time()
    acked: float | None = None
    attempts: int = 0


@dataclass
class Poster:
    """Posts people's scripts to the webhook, `streams` people at a time, optionally paced
    to `rate` updates per second overall."""

    url: str
    streams: int
    rate: float | None = None
    timeout: float = 10.0
    posted: list[Posted] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)  # non-200 answers and errors
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _next_slot: float = 0.0

    async def run(self, scripts: Sequence[Script]) -> float:
        """Post everything; returns the wall time of posting."""
        queue: asyncio.Queue[Script] = asyncio.Queue()
        for script in scripts:
            queue.put_nowait(script)
        started = time.perf_counter()
        self._next_slot = started
        connector = aiohttp.TCPConnector(limit=self.streams)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(*(self._stream(session, queue) for _ in range(self.streams)))
        return time.perf_counter() - started

    async def _stream(self, session: aiohttp.ClientSession, queue: asyncio.Queue[Script]) -> None:
        while not queue.empty():
            script = queue.get_nowait()
            chat = script.person.user_id
            for update, kind in zip(script.updates, script.kinds, strict=True):
                await self._pace()
                record = Posted(next(self._ids), chat, kind, time.time())
                self.posted.append(record)
                body = json.dumps({"update_id": record.update_id, **update}).encode()
                await self._deliver(session, body, record)

    async def _pace(self) -> None:
        if self.rate is None:
            return
        slot = self._next_slot
        self._next_slot = max(slot, time.perf_counter()) + 1 / self.rate
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _deliver(self, session: aiohttp.ClientSession, body: bytes, record: Posted) -> None:
        headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
        for attempt in itertools.count():
            record.attempts += 1
            try:
                async with session.post(self.url, data=body, headers=headers) as answer:
                    status = str(answer.status)
                    await answer.read()
            except (aiohttp.ClientError, TimeoutError) as error:
                status = type(error).__name__
            if status == "200":
                record.acked = time.time()
                return
            self.statuses[status] = self.statuses.get(status, 0) + 1
            await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
