"""Benchmark inbound updates: a realistic mix through the webhook, the inbox and the workers.

    python bench/inbound.py [--updates 1500] [--streams 64] [--postgres URL]
                            [--configs sqlite1,pg1,pg2,pg4] [--seed 0] [--keep-going]

The bot runs as real processes (`crisis-comms run` in webhook mode: the webhook and one
worker; plus N-1 `crisis-comms worker` processes) against a fast Bot API stub in a process
of its own (bench/_inbound_stub.py). The same people's updates (bench/_inbound_mix.py:
onboarding, then menu taps, free-text feedback in 15 languages, locations, consulate
questions, need picks and evacuation registrations) are posted to the webhook, each person's
in order (the next after the 200), --streams people at a time, as fast as the webhook takes
them. Then, once the inbox is empty:

- updates/s: processed / (last processed_at - first received_at), from the inbox rows;
- end-to-end p50/p99: processed_at - received_at per update (inbox rows): includes the wait
  in the inbox, which at full speed is mostly queueing;
- handler p50/p99: estimated from the `crisis_handler_latency_seconds` histogram buckets of
  every process's /metrics (linear within a bucket, as Prometheus' histogram_quantile);
- memory: VmHWM (peak) and VmRSS of every process at the end, from /proc/<pid>/status;
- CPU: user + system seconds per update of our processes (the machine's cores are shared by
  the bench's poster, the stub, PostgreSQL and the bot).

Configurations: one process on SQLite; one, two and four processes on PostgreSQL (each in a
database of its own created on the server of --postgres, dropped at the end). The ceiling,
measured in the same run: a bare python-telegram-bot echo bot (bench/_inbound_echo.py) fed
the same updates through its own aiohttp webhook and the same stub.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import pstats
import re
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from _inbound_mix import scripts
from _inbound_run import (
    Poster,
    Proc,
    add_buckets,
    bot_env,
    bucket_quantile,
    create_pg_database,
    drop_pg_database,
    free_port,
    get_json,
    get_text,
    inbox_rows,
    latency_buckets,
    percentile,
    prepare_database,
    start_echo,
    start_stub,
    start_web,
    start_worker,
    wait_drained,
    wait_ready,
)

TARGET_RATE = 1000.0  # updates per second per process
TARGET_P99 = 0.050
TARGET_RSS = 200.0  # MB per process
CONFIGS = {
    "sqlite1": ("SQLite, 1 process", False, 1),
    "pg1": ("PostgreSQL, 1 process", True, 1),
    "pg2": ("PostgreSQL, 2 processes", True, 2),
    "pg4": ("PostgreSQL, 4 processes", True, 4),
}


@dataclass
class Result:
    label: str
    processes: int
    updates: int
    rate: float
    handler_p50: float
    handler_p99: float
    e2e_p50: float
    e2e_p99: float
    rss: list[tuple[str, float, float]] = field(default_factory=list)  # name, HWM, RSS
    rss_ready: float = math.nan  # the largest RSS once ready, before any update
    calls: dict[str, int] = field(default_factory=dict)  # Bot API calls by method
    cpu_per_update: float = math.nan
    errors: int = 0
    sends: int = 0
    note: str = ""

    @property
    def peak(self) -> float:
        return max((hwm for _, hwm, _ in self.rss), default=math.nan)


async def run_echo(args: argparse.Namespace, folder: Path, stub: Proc) -> Result:
    echo = start_echo(folder, stub, args.echo_concurrency)
    try:
        await wait_ready([echo])
        people = scripts(args.updates, args.seed)
        poster = Poster(f"http://127.0.0.1:{echo.port}/telegram/webhook", args.streams)
        cpu = echo.cpu_seconds()
        ready_rss = echo.memory()[1]
        before = (await get_json(f"http://127.0.0.1:{stub.port}/stub/counts"))["methods"]
        await poster.run(people)
        deadline = time.monotonic() + args.timeout
        while True:
            stats = await get_json(f"http://127.0.0.1:{echo.port}/echo/stats")
            if stats["processed"] >= len(poster.posted) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        hwm, rss = echo.memory()
        cpu = echo.cpu_seconds() - cpu
        counts = await get_json(f"http://127.0.0.1:{stub.port}/stub/counts")
        return Result(
            label=f"echo bot (PTB, {args.echo_concurrency} at a time)",
            processes=1,
            updates=stats["processed"],
            rate=stats["processed"] / stats["wall"],
            handler_p50=percentile(stats["handler"], 0.5),
            handler_p99=percentile(stats["handler"], 0.99),
            e2e_p50=percentile(stats["e2e"], 0.5),
            e2e_p99=percentile(stats["e2e"], 0.99),
            rss=[("echo", hwm, rss)],
            cpu_per_update=cpu / max(1, stats["processed"]),
            sends=counts["methods"].get("sendMessage", 0) - before.get("sendMessage", 0),
            rss_ready=ready_rss,
            calls=_difference(counts["methods"], before),
            note=_statuses(poster),
        )
    finally:
        echo.stop()


async def run_config(
    args: argparse.Namespace, folder: Path, stub: Proc, key: str, admin_url: str | None
) -> Result:
    label, postgres, processes = CONFIGS[key]
    name = f"crisis_bench_inbound_{key}"
    if postgres:
        assert admin_url is not None
        url = await create_pg_database(admin_url, name)
    else:
        url = f"sqlite+aiosqlite:///{folder / key}.db"
    procs: list[Proc] = []
    try:
        database = await prepare_database(url)
        web_port = free_port()
        env = bot_env(url, stub, web_port, folder, **_extra_env(args))
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        profile = args.profile / f"{key}.prof" if args.profile else None
        procs.append(start_web(folder, env, profile))
        procs += [start_worker(folder, env, f"w{n}") for n in range(1, processes)]
        await wait_ready(procs)
        ready_rss = max(proc.memory()[1] for proc in procs)
        sends_before = (await get_json(f"http://127.0.0.1:{stub.port}/stub/counts"))["methods"]
        cpu = [proc.cpu_seconds() for proc in procs]
        people = scripts(args.updates, args.seed)
        poster = Poster(f"http://127.0.0.1:{web_port}/telegram/webhook", args.streams)
        await poster.run(people)
        drained = await wait_drained(database, len(poster.posted), args.timeout)
        rows = await inbox_rows(database)
        memory = [(proc.name, *proc.memory()) for proc in procs]
        cpu_used = sum(proc.cpu_seconds() - before for proc, before in zip(procs, cpu, strict=True))
        histograms = [
            latency_buckets(await get_text(f"http://127.0.0.1:{proc.port}/metrics"))
            for proc in procs
        ]
        sends = (await get_json(f"http://127.0.0.1:{stub.port}/stub/counts"))["methods"]
        await database.dispose()
    finally:
        for proc in procs:
            proc.stop()
        if postgres and admin_url is not None and not args.keep:
            await drop_pg_database(admin_url, name)
    if args.profile:
        print_profile(args.profile / f"{key}.prof", label)
    done = [(row.received_at, row.processed_at) for row in rows if row.processed_at is not None]
    e2e = [(processed - received).total_seconds() for received, processed in done]
    wall = (max(p for _, p in done) - min(r for r, _ in done)).total_seconds()
    buckets = add_buckets(*histograms)
    note = _statuses(poster) + ("" if drained else " NOT DRAINED")
    return Result(
        label=label,
        processes=processes,
        updates=len(done),
        rate=len(done) / wall,
        handler_p50=bucket_quantile(buckets, 0.5),
        handler_p99=bucket_quantile(buckets, 0.99),
        e2e_p50=percentile(e2e, 0.5),
        e2e_p99=percentile(e2e, 0.99),
        rss=memory,
        cpu_per_update=cpu_used / max(1, len(done)),
        errors=sum(1 for row in rows if row.outcome not in ("ok", None)),
        sends=sends.get("sendMessage", 0) - sends_before.get("sendMessage", 0),
        rss_ready=ready_rss,
        calls=_difference(sends, sends_before),
        note=note,
    )


def print_profile(path: Path, label: str) -> None:
    """The web process's hot spots: by own time, then by cumulative time in our code."""
    stats = pstats.Stats(str(path))
    print(f"\n--- profile of the web process, {label} (cProfile: times inflated) ---")
    stats.sort_stats("tottime").print_stats(25)
    ours = re.escape(str(Path(__file__).resolve().parent.parent))
    stats.sort_stats("cumulative").print_stats(
        ours + r"/(bot|inbox|messages|feedback|storage)/", 30
    )


def _extra_env(args: argparse.Namespace) -> dict[str, str]:
    extra = {"ANSWER_RATE": str(args.answer_rate)}
    if args.worker_concurrency:
        extra["WORKER_CONCURRENCY"] = str(args.worker_concurrency)
    return extra


def _difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {key: n - before.get(key, 0) for key, n in after.items() if n > before.get(key, 0)}


def _statuses(poster: Poster) -> str:
    if not poster.statuses:
        return ""
    return "re-posted after " + ", ".join(f"{k}×{v}" for k, v in sorted(poster.statuses.items()))


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "—"
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def print_table(results: list[Result], echo: Result | None) -> None:
    print()
    print(
        "| configuration | updates | updates/s (per process) | × echo | handler p50 / p99 "
        "(buckets) | end-to-end p50 / p99 | RSS when ready | peak RSS per process (HWM; RSS "
        "at end) | CPU per update | errors | Bot API calls (sendMessage) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for result in ([echo] if echo else []) + results:
        ratio = f"× {result.rate / echo.rate:.3f}" if echo else "—"
        memory = ", ".join(f"{name} {hwm:.0f} ({rss:.0f})" for name, hwm, rss in result.rss)
        print(
            f"| {result.label} | {result.updates:,} | {result.rate:,.0f} "
            f"({result.rate / result.processes:,.0f}) | {ratio} | {ms(result.handler_p50)} / "
            f"{ms(result.handler_p99)} | {ms(result.e2e_p50)} / {ms(result.e2e_p99)} | "
            f"{result.rss_ready:.0f} MB | {memory} MB | {ms(result.cpu_per_update)} | "
            f"{result.errors} | {sum(result.calls.values()):,} ({result.sends:,}) |"
            + (f" {result.note}" if result.note else "")
        )
    print()
    for result in ([echo] if echo else []) + results:
        calls = ", ".join(
            f"{k} {v:,}" for k, v in sorted(result.calls.items(), key=lambda i: -i[1])
        )
        print(f"Bot API calls, {result.label}: {calls}")
    print()
    print("Targets: ≥ 1,000 updates/s per process, handler p99 < 50 ms, < 200 MB per process,")
    print("throughput growing with processes on PostgreSQL.")
    for result in results:
        checks = [
            ("rate", result.rate / result.processes >= TARGET_RATE),
            ("p99", result.handler_p99 < TARGET_P99),
            ("memory", result.peak < TARGET_RSS),
        ]
        verdict = ", ".join(f"{name} {'met' if ok else 'NOT met'}" for name, ok in checks)
        print(f"  {result.label}: {verdict}")
    postgres = [result for result in results if result.label.startswith("PostgreSQL")]
    if len(postgres) > 1:
        rates = " → ".join(f"{result.rate:,.0f}" for result in postgres)
        growing = all(b.rate > a.rate for a, b in itertools.pairwise(postgres))
        print(
            f"  PostgreSQL scaling: {rates} updates/s ({'grows' if growing else 'does NOT grow'})"
        )


async def run(args: argparse.Namespace, folder: Path) -> int:
    admin_url = args.postgres
    keys = [key.strip() for key in args.configs.split(",") if key.strip()]
    if any(CONFIGS[key][1] for key in keys) and admin_url is None:
        print("PostgreSQL configurations need --postgres; running the SQLite ones only")
        keys = [key for key in keys if not CONFIGS[key][1]]
    stub = start_stub(folder)
    results: list[Result] = []
    echo = None
    failed = 0
    people = scripts(args.updates, args.seed)
    print(
        f"{os.cpu_count()} cores; {sum(len(s.updates) for s in people):,} updates from "
        f"{len(people):,} people per configuration, {args.streams} people posting at once"
    )
    try:
        await wait_ready([stub])
        if not args.skip_echo:
            echo = await run_echo(args, folder, stub)
            print(f"  done: {echo.label}: {echo.rate:,.0f} updates/s", flush=True)
        for key in keys:
            try:
                result = await run_config(args, folder, stub, key, admin_url)
            except Exception:
                failed += 1
                traceback.print_exc()
                if not args.keep_going:
                    raise
                continue
            results.append(result)
            print(f"  done: {result.label}: {result.rate:,.0f} updates/s", flush=True)
    finally:
        stub.stop()
        print_table(results, echo)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=1500, help="per configuration")
    parser.add_argument("--streams", type=int, default=64, help="people posting at once")
    parser.add_argument("--postgres", help="postgresql://… of any database on the server")
    parser.add_argument("--configs", default="sqlite1,pg1,pg2,pg4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to drain")
    parser.add_argument("--echo-concurrency", type=int, default=8)
    parser.add_argument("--worker-concurrency", type=int, help="WORKER_CONCURRENCY")
    parser.add_argument("--skip-echo", action="store_true")
    parser.add_argument(
        "--answer-rate",
        type=float,
        default=0.0,
        help="ANSWER_RATE of the bot's processes (default 0: no overall pace, the capacity; "
        "30 is Telegram's overall limit for one bot)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL databases")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="cProfile the web process, keep it in DIR"
    )
    parser.add_argument("--keep-going", action="store_true", help="go on after a failure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-inbound-") as folder:
        return asyncio.run(run(args, Path(folder)))


if __name__ == "__main__":
    raise SystemExit(main())
