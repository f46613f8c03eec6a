"""Benchmark broadcasts: delivery through a rate-limited Bot API, a SIGKILL half-way, enqueueing.

    python bench/broadcast.py [--recipients 10000] [--postgres postgresql://…] [--keep]
                              [--skip-kill] [--enqueue-only] [--enqueue-recipients 100000]

1. Throughput: a `LoopbackBotApi` with Telegram's limits enforced (30/s overall, ~1/s per
   private chat, 20/min per group, 429 with retry_after) runs in this process and keeps its
   own log of every sendMessage it accepted (`record_sends`). N started users, the same N
   consenting contacts subscribed to "alerts" in a fresh database, one broadcast enqueued with
   `messages.broadcasts.create` + `enqueue`. The sender runs in another process
   (bench/broadcast_sender.py) until the outbox is drained. From the server's log: the
   effective rate (messages - 1) / (last - first), 429 answers, duplicates and missed
   recipients; from the database: the outbox's final states and the report's throughput.
2. The same, with the sender SIGKILLed when the server's log reaches N/2 messages and a new
   sender process started at once under the same name on the same database: copies per
   recipient, rows recovered as requeued and as uncertain (never resent: one copy or none),
   and the time from the kill to the next message the server accepts.
3. Enqueue: a broadcast for --enqueue-recipients people among contacts with a realistic mix
   (topics, areas, languages, some unreachable, some without consent or address): `create` +
   `enqueue` + commit, best of 3 fresh broadcasts, against baselines timed in the same run.

SQLite files in a temporary folder by default; with --postgres (a URL of any database on the
server, used only to CREATE and DROP DATABASE) each part gets its own database
`crisis_bench_broadcast_<part>`, dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    event,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import SANDBOX_TOKEN
from bot.sandbox.botapi import LoopbackBotApi, SentRecord
from bot.sender import SenderSettings
from messages.broadcasts import Audience, Broadcast, Draft, create, enqueue, preview, report
from messages.contacts import Contact, ContactAddress, Subscription
from messages.outbox import UNCERTAIN, OutboxMessage, OutboxState
from storage.base import UtcDateTime
from storage.database import Database, connect, upgrade

RATE = 30.0
FIRST_CHAT = 5_000_000
BATCH = 10_000
RUNNER = Path(__file__).with_name("broadcast_sender.py")
SENDER_NAME = "bench-sender"
TEXTS = {
    "en": "The shelter at the north school is open tonight. Bring your documents.",
    "ar": "المأوى في المدرسة الشمالية مفتوح الليلة. أحضروا وثائقكم.",
    "fr": "L'abri de l'école nord est ouvert ce soir. Apportez vos documents.",
}
# Delivery: people's languages (uk has no text: it gets the fallback with its note).
DELIVERY_LANGUAGES = ("ar", "en", "fr", "uk")
RECOVERED = re.compile(r"outbox recovered: (\d+) requeued, (\d+) uncertain")

# Enqueue: the population's mix (weights) and the broadcast's audience.
AREAS = {f"XY{n:02d}": 13 - n for n in range(1, 13)}
LANGUAGES: dict[str | None, int] = {"ar": 30, "en": 18, "fr": 12, "uk": 10, "fa": 8, "ps": 6}
LANGUAGES |= {"so": 5, None: 11}  # None: never chose one, gets the default
AUDIENCE = Audience(topics=("alerts", "shelter", "evacuation"), areas=("XY01", "XY02", "XY03"))
ENQUEUE_TARGET_SECONDS = 2.0
REPEAT = 3


# --- databases ------------------------------------------------------------------------------


@dataclass
class Databases:
    """Fresh databases, one per part: SQLite files in `folder`, or PostgreSQL databases
    created through `admin_url` and dropped at the end unless `keep`."""

    folder: Path
    admin_url: str | None
    keep: bool

    @asynccontextmanager
    async def fresh(self, part: str) -> AsyncIterator[str]:
        if self.admin_url is None:
            yield f"sqlite+aiosqlite:///{self.folder / part}.db"
            return
        name = f"crisis_bench_broadcast_{part}"
        admin = create_async_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(self.admin_url).set(database=name)
            yield url.render_as_string(hide_password=False)
            if self.keep:
                print(f"database {name} kept")
            else:
                async with admin.connect() as connection:
                    await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        finally:
            await admin.dispose()


async def open_database(url: str) -> Database:
    database = connect(url)
    await upgrade(database)
    return database


async def insert_rows(database: Database, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    async with database.engine.begin() as connection:
        for start in range(0, len(rows), BATCH):
            await connection.execute(insert(table), list(rows[start : start + BATCH]))


async def analyze(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(text("ANALYZE"))


async def outbox_states(database: Database, broadcast_id: int) -> dict[str, int]:
    """Rows per state; failed rows by error; sending rows by whether they were attempted."""
    attempted = OutboxMessage.attempted_at.is_not(None)
    query = (
        select(OutboxMessage.state, OutboxMessage.error, attempted, func.count())
        .where(OutboxMessage.broadcast_id == broadcast_id)
        .group_by(OutboxMessage.state, OutboxMessage.error, attempted)
    )
    counts: Counter[str] = Counter()
    async with database.transaction() as session:
        for state, error, was_attempted, count in await session.execute(query):
            key = state
            if state == OutboxState.FAILED.value:
                key = f"failed ({error})"
            elif state == OutboxState.SENDING.value:
                key = "sending, attempted" if was_attempted else "sending, not attempted"
            counts[key] += count
    return dict(counts)


# --- delivery (parts 1 and 2) ---------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One sender process: when it started and ended (this process's monotonic clock)."""

    started: float
    ended: float
    returncode: int | None
    requeued: int  # from the sender's own "outbox recovered" warning
    uncertain: int


@dataclass
class Delivery:
    recipients: int
    log: list[SentRecord]
    rate_limited: int
    states: dict[str, int]
    report_rate: float | None
    runs: list[Run]
    chats: list[int] = field(default_factory=list)
    killed_at: float | None = None
    at_kill: dict[str, int] = field(default_factory=dict)  # outbox rows just after the kill
    uncertain_chats: list[int] = field(default_factory=list)

    @property
    def copies(self) -> Counter[int]:
        return Counter(record.chat_id for record in self.log)

    def copies_histogram(self) -> Counter[int]:
        copies = self.copies
        return Counter(copies.get(chat, 0) for chat in self.chats)

    @property
    def duplicates(self) -> int:
        return sum(1 for count in self.copies.values() if count > 1)

    @property
    def missed(self) -> int:
        copies = self.copies
        return sum(1 for chat in self.chats if chat not in copies)

    @property
    def strangers(self) -> int:
        """Messages to chats that are not recipients (must be 0)."""
        wanted = set(self.chats)
        return sum(1 for record in self.log if record.chat_id not in wanted)


def rate_of(records: Sequence[SentRecord]) -> float | None:
    if len(records) < 2 or records[-1].at <= records[0].at:
        return None
    return (len(records) - 1) / (records[-1].at - records[0].at)


def gaps(records: Sequence[SentRecord], batch: int) -> tuple[float, float]:
    """Mean seconds between consecutive messages: from the last of one sender batch to the
    first of the next, and within batches (where a rate under 30/s goes)."""
    spans = [b.at - a.at for a, b in itertools.pairwise(records)]
    between = [span for i, span in enumerate(spans) if (i + 1) % batch == 0]
    within = [span for i, span in enumerate(spans) if (i + 1) % batch != 0]
    return statistics.fmean(between or [0.0]), statistics.fmean(within or [0.0])


async def seed_delivery(database: Database, api: LoopbackBotApi, count: int) -> list[int]:
    """`count` started users and the matching consenting contacts, subscribed to alerts."""
    now = datetime.now(UTC)
    chats = [FIRST_CHAT + i for i in range(count)]
    for chat in chats:
        api.add_user("Bench", user_id=chat, started=True)
    contacts = [
        {
            "id": i + 1,
            "pseudonym": f"bench-{i}",
            "language": DELIVERY_LANGUAGES[i % len(DELIVERY_LANGUAGES)],
            "consent_version": "bench",
            "consent_at": now,
        }
        for i in range(count)
    ]
    await insert_rows(database, Contact.__table__, contacts)
    addresses = [{"contact_id": i + 1, "chat_id": chat} for i, chat in enumerate(chats)]
    await insert_rows(database, ContactAddress.__table__, addresses)
    subscriptions = [{"contact_id": i + 1, "topic": "alerts", "area": None} for i in range(count)]
    await insert_rows(database, Subscription.__table__, subscriptions)
    await analyze(database)
    return chats


async def start_sender(url: str, api: LoopbackBotApi, stderr: Path) -> asyncio.subprocess.Process:
    env = dict(os.environ, BENCH_DATABASE_URL=url)
    with stderr.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            str(RUNNER),
            "--base-url",
            api.base_url,
            "--token",
            api.token,
            "--name",
            SENDER_NAME,
            "--rate",
            str(RATE),
            env=env,
            stdout=sink,
            stderr=sink,
        )


def recovered(stderr: Path) -> tuple[int, int]:
    """(requeued, uncertain) from the sender's "outbox recovered" warnings."""
    found = RECOVERED.findall(stderr.read_text(errors="replace")) if stderr.exists() else []
    return sum(int(r) for r, _ in found), sum(int(u) for _, u in found)


async def finish(
    process: asyncio.subprocess.Process, started: float, stderr: Path, limit: float
) -> Run:
    try:
        async with asyncio.timeout(limit):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        print(f"  sender still running after {limit:.0f} s: killed", file=sys.stderr)
    requeued, uncertain = recovered(stderr)
    return Run(started, time.monotonic(), process.returncode, requeued, uncertain)


async def wait_for_log(
    api: LoopbackBotApi, count: int, process: asyncio.subprocess.Process
) -> None:
    while len(api.sent_log) < count:
        if process.returncode is not None:
            raise RuntimeError(f"the sender exited ({process.returncode}) before the kill")
        await asyncio.sleep(0.002)


async def deliver(url: str, recipients: int, folder: Path, *, kill: bool) -> Delivery:
    api = LoopbackBotApi(token=SANDBOX_TOKEN, enforce_rate_limits=True, record_sends=True)
    database = await open_database(url)
    try:
        chats = await seed_delivery(database, api, recipients)
        now = datetime.now(UTC)
        async with database.transaction() as session:
            broadcast = await create(session, Draft(TEXTS, Audience(("alerts",))), None, now)
            queued = await enqueue(session, broadcast, now, "en")
        assert queued == recipients, (queued, recipients)
        await api.start()
        timeout = recipients / RATE * 2 + 120
        result = Delivery(recipients, api.sent_log, 0, {}, None, [], chats)
        stderr = folder / f"sender-{'kill' if kill else 'throughput'}.log"
        stderr.unlink(missing_ok=True)
        started = time.monotonic()
        process = await start_sender(url, api, stderr)
        if kill:
            await wait_for_log(api, recipients // 2, process)
            process.send_signal(signal.SIGKILL)
            result.killed_at = time.monotonic()
            result.runs.append(await finish(process, started, stderr, timeout))
            result.at_kill = await outbox_states(database, broadcast.id)
            restart_log = folder / "sender-restart.log"
            restart_log.unlink(missing_ok=True)
            started = time.monotonic()
            process = await start_sender(url, api, restart_log)
            stderr = restart_log
        result.runs.append(await finish(process, started, stderr, timeout))
        await api.stop()
        result.rate_limited = api.rate_limited_count
        result.states = await outbox_states(database, broadcast.id)
        async with database.transaction() as session:
            fresh = await session.get(Broadcast, broadcast.id)
            assert fresh is not None
            result.report_rate = (await report(session, fresh)).per_second
            uncertain = select(ContactAddress.chat_id).join(
                OutboxMessage, OutboxMessage.contact_id == ContactAddress.contact_id
            )
            uncertain = uncertain.where(
                OutboxMessage.broadcast_id == broadcast.id, OutboxMessage.error == UNCERTAIN
            )
            result.uncertain_chats = list(await session.scalars(uncertain))
        return result
    finally:
        await api.stop()
        await database.dispose()


# --- enqueue (part 3) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    contacts: int
    eligible: int
    subscriptions: int
    no_consent: int
    unreachable: int
    no_address: int


def weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), list(weights.values()))[0]


async def seed_population(database: Database, target: int) -> Population:
    """Contacts until exactly `target` of them are in AUDIENCE (random.Random(0))."""
    rng = random.Random(0)
    now = datetime.now(UTC)
    contacts: list[dict[str, Any]] = []
    addresses: list[dict[str, Any]] = []
    subscriptions: list[dict[str, Any]] = []
    eligible = no_consent = unreachable = no_address = 0
    while eligible < target:
        contact_id = len(contacts) + 1
        area = weighted(rng, AREAS)
        consented = rng.random() >= 0.05
        reachable = rng.random() >= 0.03
        has_address = rng.random() >= 0.01
        contacts.append(
            {
                "id": contact_id,
                "pseudonym": f"bench-{contact_id}",
                "language": weighted(rng, LANGUAGES),
                "consent_version": "bench" if consented else None,
                "consent_at": now if consented else None,
                "unreachable_at": None if reachable else now,
                "area_code": area,
            }
        )
        if has_address:
            addresses.append({"contact_id": contact_id, "chat_id": FIRST_CHAT + contact_id})
        topics: list[tuple[str, str | None]] = []
        for topic, share, local in (
            ("alerts", 0.75, False),
            ("shelter", 0.35, True),
            ("evacuation", 0.20, True),
            ("health", 0.20, False),
            ("consular", 0.05, False),
        ):
            if rng.random() < share:
                topics.append((topic, area if local else None))
        subscriptions += [{"contact_id": contact_id, "topic": t, "area": a} for t, a in topics]
        in_audience = any(
            topic in AUDIENCE.topics and (where is None or where in AUDIENCE.areas)
            for topic, where in topics
        )
        no_consent += not consented
        unreachable += not reachable
        no_address += not has_address
        eligible += consented and reachable and has_address and in_audience
    await insert_rows(database, Contact.__table__, contacts)
    await insert_rows(database, ContactAddress.__table__, addresses)
    await insert_rows(database, Subscription.__table__, subscriptions)
    await analyze(database)
    return Population(
        len(contacts), eligible, len(subscriptions), no_consent, unreachable, no_address
    )


SCRATCH = Table(
    "bench_scratch",
    MetaData(),
    Column("broadcast_id", Integer),
    Column("contact_id", Integer),
    Column("language", String(16)),
    Column("topic", String(32)),
    Column("priority", SmallInteger),
    Column("state", String(16)),
    Column("not_before", UtcDateTime()),
    Column("attempts", Integer),
)


@dataclass(frozen=True)
class Enqueued:
    population: Population
    enqueue: list[float]  # create + enqueue + commit, per fresh broadcast
    recipients: int
    audience: float  # `preview`: the audience query alone, grouped by language
    scratch: float  # INSERT … SELECT of as many rows from contacts into an unindexed table
    plan: list[str]


async def best_of(call: Callable[[], Awaitable[object]]) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        await call()
        best = min(best, time.perf_counter() - start)
    return best


async def plain_insert(database: Database, count: int) -> None:
    """The baseline: as many rows copied from contacts into a table without indexes."""
    now = datetime.now(UTC)
    source = select(
        literal(0),
        Contact.id,
        func.coalesce(Contact.language, "en"),
        literal("alerts"),
        literal(0),
        literal(OutboxState.QUEUED.value),
        literal(now, UtcDateTime()),
        literal(0),
    ).order_by(Contact.id)
    async with database.transaction() as session:
        await session.execute(SCRATCH.delete())
    async with database.transaction() as session:
        await session.execute(SCRATCH.insert().from_select(list(SCRATCH.c), source.limit(count)))


async def explain_enqueue(database: Database, draft: Draft) -> list[str]:
    """The plan of the very INSERT … SELECT that `enqueue` runs, made by the database while
    running it (PostgreSQL: EXPLAIN ANALYZE, with the foreign keys' trigger times; SQLite:
    EXPLAIN QUERY PLAN), in a transaction that is rolled back."""
    postgres = database.engine.dialect.name == "postgresql"
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
    plan: list[str] = []

    def before(*args: Any) -> tuple[str, Any]:
        statement, parameters = args[2], args[3]
        if statement.startswith("INSERT INTO outbox "):
            statement = prefix + statement
        return statement, parameters

    def after(*args: Any) -> None:
        cursor, statement = args[1], args[2]
        if statement.startswith(prefix):
            plan.extend(" | ".join(str(value) for value in row) for row in cursor.fetchall())

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before, retval=True)
    event.listen(engine, "after_cursor_execute", after)
    try:
        async with database.sessions() as session:
            now = datetime.now(UTC)
            await enqueue(session, await create(session, draft, None, now), now, "en")
            await session.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return plan


async def vacuum(database: Database) -> None:
    """After a bulk load, as autovacuum would soon do (it would otherwise run during timing)."""
    if database.engine.dialect.name == "postgresql":
        async with database.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE"))


async def measure_enqueue(url: str, target: int, *, explain: bool) -> Enqueued:
    database = await open_database(url)
    try:
        started = time.perf_counter()
        population = await seed_population(database, target)
        await vacuum(database)
        print(f"  seeded {population.contacts:,} contacts in {time.perf_counter() - started:.1f} s")
        async with database.engine.begin() as connection:
            await connection.run_sync(SCRATCH.create)
        draft = Draft({"en": TEXTS["en"], "ar": TEXTS["ar"]}, AUDIENCE)

        async def audience() -> object:
            async with database.transaction() as session:
                return await preview(session, draft, "en", ())

        audience_seconds = await best_of(audience)
        scratch_seconds = await best_of(lambda: plain_insert(database, target))
        times: list[float] = []
        recipients = 0
        for _ in range(REPEAT):
            start = time.perf_counter()
            async with database.transaction() as session:
                now = datetime.now(UTC)
                broadcast = await create(session, draft, None, now)
                recipients = await enqueue(session, broadcast, now, "en")
            times.append(time.perf_counter() - start)
        slow = min(times) >= ENQUEUE_TARGET_SECONDS
        plan = await explain_enqueue(database, draft) if explain or slow else []
        return Enqueued(population, times, recipients, audience_seconds, scratch_seconds, plan)
    finally:
        await database.dispose()


# --- printing -------------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def table(rows: Sequence[tuple[str, str, str]]) -> None:
    width = max(len(label) for label, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    for label, value, note in rows:
        print(f"  {label:<{width}}  {value:>{value_width}}  {note}".rstrip())


def fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2f}/s"


def deviation(rate: float | None) -> str:
    return "-" if rate is None else f"{(rate - RATE) / RATE * 100:+.2f} %"


def states_line(states: dict[str, int]) -> str:
    return ", ".join(f"{key} {count:,}" for key, count in sorted(states.items()))


def print_throughput(result: Delivery) -> None:
    rate = rate_of(result.log)
    ok_rate = rate is not None and abs(rate - RATE) <= RATE * 0.05
    run = result.runs[-1]
    between, within = gaps(result.log, SenderSettings().batch)
    rows = [
        ("recipients", f"{result.recipients:,}", ""),
        ("messages the server accepted", f"{len(result.log):,}", ""),
        ("effective rate (server log)", fmt_rate(rate), f"target 30/s ± 5 %: {mark(ok_rate)}"),
        ("deviation from 30/s", deviation(rate), ""),
        ("429 answers", str(result.rate_limited), f"target 0: {mark(result.rate_limited == 0)}"),
        ("duplicates (chats > 1 copy)", str(result.duplicates), mark(result.duplicates == 0)),
        ("missed (recipients, 0 copies)", str(result.missed), mark(result.missed == 0)),
        ("messages to non-recipients", str(result.strangers), ""),
        ("mean gap between batches of 30", f"{between * 1000:.1f} ms", "a slot is 33.3 ms"),
        ("mean gap within batches", f"{within * 1000:.1f} ms", ""),
        ("report's throughput (sent_at)", fmt_rate(result.report_rate), ""),
        ("sender process, start to exit", f"{run.ended - run.started:.1f} s", ""),
    ]
    table(rows)
    print(f"  outbox: {states_line(result.states)}")


def print_kill(result: Delivery) -> None:
    assert result.killed_at is not None
    before = [r for r in result.log if r.at <= result.killed_at]
    after = [r for r in result.log if r.at > result.killed_at]
    resume = after[0].at - result.killed_at if after else None
    gap = after[0].at - before[-1].at if after and before else None
    histogram = result.copies_histogram()
    copies = result.copies
    delivered = sum(1 for chat in result.uncertain_chats if copies.get(chat, 0) == 1)
    lost = sum(1 for chat in result.uncertain_chats if copies.get(chat, 0) == 0)
    requeued = sum(run.requeued for run in result.runs)
    uncertain = sum(run.uncertain for run in result.runs)
    everyone_once = histogram.get(1, 0) == result.recipients
    rows = [
        ("recipients", f"{result.recipients:,}", ""),
        ("killed (SIGKILL) after", f"{len(before):,}", "messages in the server log"),
        ("accepted after the restart", f"{len(after):,}", ""),
        ("copies per recipient: exactly 1", f"{histogram.get(1, 0):,}", mark(everyone_once)),
        ("  0 copies (missed)", f"{histogram.get(0, 0):,}", ""),
        ("  2 or more (duplicates)", f"{sum(n for k, n in histogram.items() if k > 1):,}", ""),
        ("recovered: requeued (sent later)", str(requeued), "claimed, not yet attempted"),
        ("recovered: uncertain (not resent)", str(uncertain), "attempted, answer not recorded"),
        ("  of which reached the server", str(delivered), "1 copy"),
        ("  of which never left", str(lost), "0 copies"),
        ("429 answers", str(result.rate_limited), mark(result.rate_limited == 0)),
        ("time to resume (kill → next msg)", "-" if resume is None else f"{resume:.2f} s", ""),
        ("gap in the server log", "-" if gap is None else f"{gap:.2f} s", ""),
        ("rate before the kill", fmt_rate(rate_of(before)), ""),
        ("rate after the restart", fmt_rate(rate_of(after)), ""),
    ]
    table(rows)
    print(f"  outbox just after the kill: {states_line(result.at_kill)}")
    print(f"  outbox at the end: {states_line(result.states)}")


def print_enqueue(result: Enqueued, backend: str) -> None:
    best = min(result.enqueue)
    population = result.population
    print(
        f"  population: {population.contacts:,} contacts, {population.subscriptions:,} "
        f"subscriptions; {population.no_consent:,} without consent, "
        f"{population.unreachable:,} unreachable, {population.no_address:,} without address"
    )
    rows = [
        ("recipients enqueued", f"{result.recipients:,}", ""),
        (
            "create + enqueue + commit, best of 3",
            f"{best * 1000:.0f} ms",
            f"target < 2 s on {backend}: {mark(best < ENQUEUE_TARGET_SECONDS)}",
        ),
        ("  each run", " / ".join(f"{t * 1000:.0f}" for t in result.enqueue), "ms"),
        ("baseline: plain INSERT … SELECT", f"{result.scratch * 1000:.0f} ms", "no index"),
        ("  ratio enqueue / plain insert", f"× {best / result.scratch:.2f}", ""),
        ("audience query alone (preview)", f"{result.audience * 1000:.0f} ms", ""),
    ]
    table(rows)
    if result.plan:
        print("  plan of enqueue's INSERT … SELECT (rolled back):")
        for line in result.plan:
            print(f"    {line}")


# --- main -----------------------------------------------------------------------------------


def postgres_url(raw: str | None) -> str | None:
    if raw is None:
        return None
    url = raw.replace("postgresql://", "postgresql+asyncpg://", 1)
    if not url.startswith("postgresql+asyncpg://"):
        raise SystemExit("--postgres needs a postgresql:// or postgresql+asyncpg:// URL")
    return url


async def main(args: argparse.Namespace) -> None:
    admin_url = postgres_url(args.postgres)
    backend = "PostgreSQL" if admin_url else "SQLite"
    with tempfile.TemporaryDirectory(prefix="bench-broadcast-") as temporary:
        folder = Path(tempfile.mkdtemp(prefix="bench-broadcast-")) if args.keep else None
        databases = Databases(folder or Path(temporary), admin_url, args.keep)
        logs = databases.folder
        if not args.enqueue_only:
            print(f"\n1. Throughput, {args.recipients:,} recipients, {backend}")
            async with databases.fresh("throughput") as url:
                print_throughput(await deliver(url, args.recipients, logs, kill=False))
            if not args.skip_kill:
                print(f"\n2. SIGKILL at half-way and restart, {args.recipients:,}, {backend}")
                async with databases.fresh("kill") as url:
                    print_kill(await deliver(url, args.recipients, logs, kill=True))
        if not args.skip_enqueue:
            print(f"\n3. Enqueue, {args.enqueue_recipients:,} recipients, {backend}")
            async with databases.fresh("enqueue") as url:
                enqueued = await measure_enqueue(url, args.enqueue_recipients, explain=args.explain)
                print_enqueue(enqueued, backend)
        if folder is not None:
            print(f"\nSQLite files and sender logs kept in {folder}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--enqueue-recipients", type=int, default=100_000)
    parser.add_argument("--postgres", help="postgresql://… of a server to create databases on")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--skip-kill", action="store_true", help="no SIGKILL run")
    parser.add_argument("--skip-enqueue", action="store_true", help="no enqueue run")
    parser.add_argument("--enqueue-only", action="store_true", help="only the enqueue run")
    parser.add_argument("--explain", action="store_true", help="show the enqueue INSERT's plan")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
