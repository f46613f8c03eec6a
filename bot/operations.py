"""Operations endpoints on every server a process runs: /healthz, /readyz, /metrics.

- ``/healthz``: the process answers (its event loop runs). A supervisor restarts it if not.
- ``/readyz``: it can do its work: the database answers and the bot is started (and, in a
  worker, its inbox worker runs). A load balancer sends it traffic only then; 503 otherwise.
- ``/metrics``: Prometheus text format: this process's counters and latency histogram
  (bot/metrics.py), and the shared inbox and outbox depths read from the database.

They reveal no personal data (counts only), so they need no login; a deployment that does
not want them public keeps them behind its reverse proxy (docs/deployment.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text

from bot.metrics import Metrics
from inbox import updates as inbox
from messages.outbox import PENDING_STATES, OutboxMessage
from storage.database import Database

log = logging.getLogger("crisis_comms.operations")


@dataclass(frozen=True)
class Probe:
    """What the endpoints look at. `running` tells whether the bot (and worker) work."""

    db: Database
    metrics: Metrics
    running: Callable[[], bool] = lambda: True


async def _database_answers(db: Database) -> bool:
    try:
        async with db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure means "not ready"; the kind is logged
        log.warning("readyz: database unreachable (%s)", type(error).__name__)
        return False
    return True


async def _read_depths(probe: Probe) -> None:
    async with probe.db.transaction() as session:
        depth = await inbox.depth(session)
        outbox = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.state.in_(PENDING_STATES))
        )
    probe.metrics.inbox_depth.labels(state="pending").set(depth.pending)
    probe.metrics.inbox_depth.labels(state="claimed").set(depth.claimed)
    probe.metrics.outbox_depth.set(outbox or 0)


def operations_routes(probe: Probe) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/healthz")
    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    @routes.get("/readyz")
    async def readyz(_request: web.Request) -> web.Response:
        if not probe.running():
            return web.Response(status=503, text="starting or stopping\n")
        if not await _database_answers(probe.db):
            return web.Response(status=503, text="database unreachable\n")
        return web.Response(text="ready\n")

    @routes.get("/metrics")
    async def metrics(_request: web.Request) -> web.Response:
        try:
            await _read_depths(probe)
        except Exception as error:  # the counters are still worth serving
            probe.metrics.errors.labels(kind="metrics").inc()
            log.warning("metrics: queue depths unreadable (%s)", type(error).__name__)
        body = probe.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return routes


def mount_operations(app: web.Application, probe: Probe) -> web.Application:
    app.router.add_routes(operations_routes(probe))
    return app
