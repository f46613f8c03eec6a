"""This process's Prometheus metrics, in a registry of its own (no global state).

Counters and the latency histogram are updated where the work happens (the update
processor, the webhook, the error handler); the inbox and outbox depths are read from the
database when /metrics is scraped, so that every process reports the same shared queues.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Handler latency buckets in seconds: the 50 ms target sits between two of them.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.received = Counter(
            "crisis_updates_received",
            "Updates received from Telegram (kept in the inbox, or queued when polling).",
            ["outcome"],
            registry=r,
        )
        self.processed = Counter(
            "crisis_updates_processed",
            "Updates processed by this process.",
            ["outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "crisis_handler_latency_seconds",
            "Time to process one update through the handlers.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "crisis_errors", "Errors by kind (handler, inbox, database...).", ["kind"], registry=r
        )
        self.inbox_depth = Gauge(
            "crisis_inbox_depth", "Inbox updates not yet processed.", ["state"], registry=r
        )
        self.outbox_depth = Gauge(
            "crisis_outbox_depth", "Outgoing broadcast messages not yet sent.", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
