"""Benchmark faults under load: kill -9 a worker, restart PostgreSQL; count what was lost.

    python bench/faults.py [--updates 1500] [--rate 50] [--processes 3] [--at 0.4]
                           [--only control,kill,restart] [--keep-going]

A throwaway PostgreSQL cluster of its own (initdb in a temporary folder, run as the
`postgres` user, on a free port; never the shared cluster) holds one fresh database per
scenario. The bot runs as `crisis-comms run` (webhook + worker "web") and --processes - 1
`crisis-comms worker` processes (w1, w2, ...) against the Bot API stub
(bench/_inbound_stub.py); the people of bench/_inbound_mix.py are posted at --rate updates
per second, each person's updates in order, every update posted again until its 200 comes
(as Telegram does on 5xx and timeouts). When --at of the updates are posted:

- control: nothing happens (the expected effects: messages per chat);
- kill: worker w1 is killed with SIGKILL (its claims wait for its heartbeat to expire,
  inbox/workers.py DEAD_AFTER, and go to the others);
- restart: `pg_ctl restart -m fast` of the cluster (every connection dropped).

- respawn (only when asked): w1 killed as above and started again at once under the
  same name, as a supervisor with a fixed WORKER_NAME would.

After the inbox settles (every posted update in it and processed, or --settle seconds):

- lost: updates answered 200 but not in the inbox, inbox rows never processed, updates never
  answered 200 (the bench posts again until it is, so these would be the bench giving up);
- twice: inbox rows claimed more than once (`attempts` > 1: taken over or retried), feedback
  items kept twice for the same message (same contact and `source_message_id`), and chats
  that got more sendMessage calls than in the control run (fewer: effects missing);
- answering again: for the kill, the time from the kill until every update the killed
  worker held was processed, and the first update processed after the kill by anyone; for
  the restart, the longest time without any update processed around it, and the time from
  the restart until the first update processed after `pg_ctl restart` returned.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from _inbound_mix import scripts
from _inbound_run import (
    InboxRow,
    Poster,
    Proc,
    bot_env,
    create_pg_database,
    free_port,
    get_json,
    inbox_rows,
    prepare_database,
    start_stub,
    start_web,
    start_worker,
    wait_drained,
    wait_ready,
)
from sqlalchemy import func, select

from feedback.items import FeedbackItem
from storage.database import Database

SCENARIOS = ("control", "kill", "restart")
# Not run by default: w1 killed and started again at once under the same name, as a
# supervisor (systemd Restart=always, WORKER_NAME fixed) would.
OPTIONAL = ("respawn",)


# --- a throwaway PostgreSQL cluster ---------------------------------------------------------


@dataclass
class Cluster:
    folder: Path
    port: int
    bin: Path

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> float:
        """Run pg_ctl as postgres; returns how long it took."""
        started = time.perf_counter()
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data),
             *args],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return time.perf_counter() - started


def postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    if not versions:
        raise SystemExit("no /usr/lib/postgresql/*/bin/initdb: install PostgreSQL's server")
    return versions[-1].parent


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    folder = Path(tempfile.mkdtemp(prefix="bench-faults-pg-"))
    postgres = pwd.getpwnam("postgres")
    os.chown(folder, postgres.pw_uid, postgres.pw_gid)
    cluster = Cluster(folder, free_port(), postgres_bin())
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(cluster.bin / "initdb"), "-D", str(cluster.data),
         "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    options = f"-p {cluster.port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
    cluster.pg_ctl("-l", str(folder / "postgres.log"), "-o", options, "-w", "start")
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.pg_ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


# --- one scenario ---------------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: str
    posted: int
    reposts: dict[str, int]
    rows: list[InboxRow]
    acked: set[int]
    posted_ids: set[int]
    messages: dict[int, int]  # sendMessage per chat (the stub's count)
    feedback_twice: int  # extra feedback items for an already kept message
    settled: bool
    fault_at: float | None = None  # time.time()
    fault_done: float | None = None  # pg_ctl restart returned
    held: set[int] = field(default_factory=set)  # updates the killed worker held
    taken_over: int = 0  # "finished after its claim was taken over" in the logs
    ended: float = math.nan  # time.time() when the inbox settled, or the wait gave up

    @property
    def never_acked(self) -> int:
        return len(self.posted_ids - self.acked)

    @property
    def acked_missing(self) -> int:
        return len(self.acked - {row.update_id for row in self.rows})

    @property
    def unprocessed(self) -> int:
        return sum(1 for row in self.rows if row.processed_at is None)

    @property
    def claimed_twice(self) -> int:
        return sum(1 for row in self.rows if row.attempts > 1)

    def processed_times(self) -> list[float]:
        return sorted(row.processed_at.timestamp() for row in self.rows if row.processed_at)


async def feedback_twice(database: Database) -> int:
    """Extra feedback items of messages kept more than once (same contact and message)."""
    item = FeedbackItem
    groups = (
        select(func.count().label("n"))
        .where(item.source_message_id.is_not(None))
        .group_by(item.contact_id, item.source_message_id)
        .having(func.count() > 1)
        .subquery()
    )
    async with database.transaction() as session:
        extra = await session.scalar(select(func.coalesce(func.sum(groups.c.n - 1), 0)))
    return int(extra or 0)


async def held_by(database: Database, worker: str) -> set[int]:
    rows = await inbox_rows(database)
    return {r.update_id for r in rows if r.claimed_by == worker and r.processed_at is None}


async def run_scenario(
    args: argparse.Namespace, folder: Path, cluster: Cluster, stub: Proc, scenario: str
) -> Outcome:
    url = await create_pg_database(cluster.url, f"crisis_bench_faults_{scenario}")
    database = await prepare_database(url)
    await _post(f"http://127.0.0.1:{stub.port}/stub/reset")
    web_port = free_port()
    env = bot_env(url, stub, web_port, folder / scenario)
    (folder / scenario).mkdir(exist_ok=True)
    procs = [start_web(folder / scenario, env)]
    procs += [start_worker(folder / scenario, env, f"w{n}") for n in range(1, args.processes)]
    fault: dict[str, float] = {}
    held: set[int] = set()
    try:
        await wait_ready(procs)
        people = scripts(args.updates, args.seed)
        total = sum(len(script.updates) for script in people)
        poster = Poster(f"http://127.0.0.1:{web_port}/telegram/webhook", args.streams, args.rate)

        async def inject() -> None:
            # The poster's progress is a plain list: polled, not signalled.
            while len(poster.posted) < total * args.at:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            fault["at"] = time.time()
            if scenario in ("kill", "respawn"):
                # The worst moment: while the worker holds updates (up to 5 s to see it).
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    if await held_by(database, procs[1].name):
                        break
                    await asyncio.sleep(0.01)
                fault["at"] = time.time()
                procs[1].kill9()
                held.update(await held_by(database, procs[1].name))
            if scenario == "respawn":
                procs[1].stop()
                procs[1] = start_worker(folder / scenario, env, procs[1].name)
                await wait_ready([procs[1]])
            elif scenario == "restart":
                await asyncio.to_thread(cluster.pg_ctl, "-m", "fast", "-w", "restart")
                fault["done"] = time.time()

        injector = asyncio.create_task(inject())
        await poster.run(people)
        await injector
        settled = await wait_drained(database, len(poster.posted), args.settle)
        ended = time.time()
        rows = await inbox_rows(database)
        twice = await feedback_twice(database)
        counts = await get_json(f"http://127.0.0.1:{stub.port}/stub/counts")
    finally:
        for proc in procs:
            proc.stop()
        await database.dispose()
    taken_over = sum(proc.log_text().count("after its claim was taken over") for proc in procs)
    return Outcome(
        scenario=scenario,
        posted=len(poster.posted),
        reposts=dict(poster.statuses),
        rows=rows,
        acked={p.update_id for p in poster.posted if p.acked is not None},
        posted_ids={p.update_id for p in poster.posted},
        messages={int(chat): n for chat, n in counts["messages"].items()},
        feedback_twice=twice,
        settled=settled,
        fault_at=fault.get("at"),
        fault_done=fault.get("done"),
        held=held,
        taken_over=taken_over,
        ended=ended,
    )


async def _post(url: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(url) as answer:
        await answer.read()


# --- report ---------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.2f} s"


def answering_again(outcome: Outcome) -> str:
    if outcome.fault_at is None:
        return "—"
    at = outcome.fault_at
    times = outcome.processed_times()
    if outcome.scenario in ("kill", "respawn"):
        first = next((t for t in times if t > at), math.nan)
        held = [r.processed_at.timestamp() for r in outcome.rows if r.update_id in outcome.held
                and r.processed_at is not None]  # fmt: skip
        last_held = max(held) - at if held else math.nan
        return (
            f"first update after the kill {seconds(first - at)}; the {len(outcome.held)} "
            f"it held done after {seconds(last_held)}"
        )
    # Up to the end of the wait: a bot that never answers again has one gap to the end.
    window = [t for t in times if at - 2 <= t] + [outcome.ended]
    gap = max((b - a for a, b in itertools.pairwise(window)), default=math.nan)
    done = outcome.fault_done or at
    first = next((t for t in times if t > done), math.nan)
    return (
        f"restart took {seconds(done - at)}; longest time without an update processed "
        f"{seconds(gap)}; first after the restart {seconds(first - at)} after it began"
    )


def compare(outcome: Outcome, control: Outcome | None) -> tuple[str, str]:
    if control is None:
        return "no control", "no control"
    chats = set(control.messages) | set(outcome.messages)
    more = {c: outcome.messages.get(c, 0) - control.messages.get(c, 0) for c in chats}
    extra = sum(d for d in more.values() if d > 0)
    missing = -sum(d for d in more.values() if d < 0)
    return (
        f"{sum(1 for d in more.values() if d > 0)} chats, +{extra}",
        f"{sum(1 for d in more.values() if d < 0)} chats, −{missing}",
    )


def print_table(outcomes: list[Outcome]) -> None:
    control = next((o for o in outcomes if o.scenario == "control"), None)
    print()
    print(
        "| scenario | posted | re-posted (answers) | lost: 200 but not kept / never processed / "
        "never 200 | taken over | feedback kept twice | chats with extra sendMessage | "
        "chats missing sendMessage | errors | settled |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for outcome in outcomes:
        extra, missing = compare(outcome, control)
        if outcome is control:
            extra = missing = "(reference)"
        reposts = ", ".join(f"{k}×{v}" for k, v in sorted(outcome.reposts.items())) or "0"
        errors = sum(1 for row in outcome.rows if row.outcome == "error")
        print(
            f"| {outcome.scenario} | {outcome.posted:,} | {reposts} | {outcome.acked_missing} / "
            f"{outcome.unprocessed} / {outcome.never_acked} | {outcome.claimed_twice} | "
            f"{outcome.feedback_twice} | {extra} | {missing} | {errors} | "
            f"{'yes' if outcome.settled else 'NO'} |"
        )
    print()
    for outcome in outcomes:
        if outcome.scenario != "control":
            line = f"{outcome.scenario}: {answering_again(outcome)}"
            if outcome.taken_over:
                line += f"; {outcome.taken_over} 'finished after its claim was taken over'"
            print(line)
    total_messages = Counter({o.scenario: sum(o.messages.values()) for o in outcomes})
    print("sendMessage in all: " + ", ".join(f"{k} {v:,}" for k, v in total_messages.items()))


async def run(args: argparse.Namespace, folder: Path) -> int:
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    outcomes: list[Outcome] = []
    failed = 0
    print(
        f"{os.cpu_count()} cores; {args.processes} processes; {args.rate:g} updates/s posted; "
        f"fault when {args.at:.0%} are posted; {args.updates:,}+ updates per scenario"
    )
    with throwaway_cluster() as cluster:
        stub = start_stub(folder)
        try:
            await wait_ready([stub])
            for scenario in wanted:
                started = time.perf_counter()
                try:
                    outcomes.append(await run_scenario(args, folder, cluster, stub, scenario))
                except Exception:
                    failed += 1
                    traceback.print_exc()
                    if not args.keep_going:
                        raise
                    continue
                print(f"  done: {scenario} in {time.perf_counter() - started:.0f} s", flush=True)
        finally:
            stub.stop()
            print_table(outcomes)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=1500, help="per scenario")
    parser.add_argument("--rate", type=float, default=50.0, help="updates per second posted")
    parser.add_argument("--streams", type=int, default=32, help="people posting at once")
    parser.add_argument("--processes", type=int, default=3, help="bot processes (2 or more)")
    parser.add_argument("--at", type=float, default=0.4, help="share posted before the fault")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"of {', '.join(SCENARIOS + OPTIONAL)}"
    )
    parser.add_argument("--settle", type=float, default=180.0, help="seconds to wait at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-going", action="store_true", help="go on after a failure")
    args = parser.parse_args()
    if args.processes < 2:
        parser.error("--processes: 2 or more (the kill needs a worker besides the web process)")
    if os.geteuid() != 0:
        parser.error("run as root: the throwaway cluster runs as the postgres user (runuser)")
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as folder:
        return asyncio.run(run(args, Path(folder)))


if __name__ == "__main__":
    raise SystemExit(main())
