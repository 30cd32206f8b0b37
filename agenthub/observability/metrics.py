"""Prometheus metrics: the seed's six, with its names, types and labels, in a registry of the
app's own (plus the process, platform and garbage-collector collectors).

Label values stay bounded: HTTP routes are templates (unknown paths share one value), events
and database operations come from fixed lists, and ids appear only where the seed puts them
(`room_id` on messages)."""

from __future__ import annotations

import time
from typing import Any

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
DB_OPERATIONS = frozenset({"select", "insert", "update", "delete", "begin", "commit", "rollback"})
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
UNMATCHED = "unmatched"

# `*_created` series double every counter's output for no use here.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        prometheus_client.ProcessCollector(registry=self.registry)
        prometheus_client.PlatformCollector(registry=self.registry)
        prometheus_client.GCCollector(registry=self.registry)
        r = self.registry
        self.agents_connected = Gauge(
            "agenthub_agents_connected", "Active WebSocket (Socket.IO) connections", registry=r
        )
        self.rooms_active = Gauge(
            "agenthub_rooms_active", "Rooms with at least 1 connected agent", registry=r
        )
        self.messages_total = Counter(
            "agenthub_messages_total", "Total messages sent (stored)", ["room_id"], registry=r
        )
        self.websocket_latency = Histogram(
            "agenthub_websocket_latency_seconds",
            "WebSocket event processing time",
            ["event"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests_total = Counter(
            "agenthub_http_requests_total",
            "HTTP request count",
            ["method", "route", "status_code"],
            registry=r,
        )
        self.db_query_duration = Histogram(
            "agenthub_db_query_duration_seconds",
            "Database query latency",
            ["operation"],
            buckets=DB_BUCKETS,
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def http_request(self, method: str, route: str, status: int) -> None:
        method = method if method in HTTP_METHODS else "OTHER"
        self.http_requests_total.labels(method, route, str(status)).inc()

    def db_query(self, statement: str, seconds: float) -> None:
        word = statement.lstrip()[:8].split(None, 1)
        op = word[0].lower() if word else ""
        self.db_query_duration.labels(op if op in DB_OPERATIONS else "other").observe(seconds)

    def message_stored(self, room_id: Any) -> None:
        self.messages_total.labels(str(room_id)).inc()


def now() -> float:
    return time.perf_counter()
