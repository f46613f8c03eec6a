"""The broadcast sender alone in a process, for bench/broadcast.py (which may SIGKILL it).

    BENCH_DATABASE_URL=sqlite+aiosqlite:///… python bench/broadcast_sender.py \\
        --base-url http://127.0.0.1:PORT/bot [--name bench-sender] [--rate 30]

Runs `bot.sender.Sender.run` (recovery at start included) until the outbox has no row queued
or sending, then exits. The database URL comes from the environment so that a PostgreSQL
password never shows in the process list. The sender's own warnings (e.g. "outbox recovered:
N requeued, M uncertain") go to stderr, which the benchmark reads.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from sqlalchemy import func, select
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.config import SANDBOX_TOKEN
from bot.sender import Sender, SenderSettings
from messages.outbox import PENDING_STATES, OutboxMessage
from storage.database import Database, connect

POLL_SECONDS = 0.25


async def pending(db: Database) -> int:
    async with db.transaction() as session:
        query = select(func.count()).where(OutboxMessage.state.in_(PENDING_STATES))
        return int(await session.scalar(query) or 0)


async def stop_when_drained(db: Database, stop: asyncio.Event) -> None:
    # Another process's rows: nothing to wait on but the database itself.
    while await pending(db):  # noqa: ASYNC110
        await asyncio.sleep(POLL_SECONDS)
    stop.set()


async def main(args: argparse.Namespace) -> None:
    db = connect(os.environ["BENCH_DATABASE_URL"])
    # As bot.sender.sender_bot: no AIORateLimiter, a pool for the requests in flight.
    bot = Bot(args.token, base_url=args.base_url, request=HTTPXRequest(connection_pool_size=16))
    sender = Sender(bot, db, SenderSettings(name=args.name, rate=args.rate))
    stop = asyncio.Event()
    try:
        async with bot:
            watcher = asyncio.create_task(stop_when_drained(db, stop))
            await sender.run(stop.is_set)
            await watcher
    finally:
        await db.dispose()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base-url", required=True, help="the Bot API's base URL (…/bot)")
    parser.add_argument("--token", default=SANDBOX_TOKEN)
    parser.add_argument("--name", default="bench-sender", help="the sender's name (claims)")
    parser.add_argument("--rate", type=float, default=30.0)
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    asyncio.run(main(parse_args()))
