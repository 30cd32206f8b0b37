"""Prometheus metrics: the seed's six, with its names, types and labels, and what an operator's
alerts need beside them (HTTP latency, readiness, rate-limit refusals, database errors and
connection pools), in a registry of the app's own (plus the process, platform and
garbage-collector collectors). docs/METRICS.md describes each one; a test keeps them in step.

Label values stay bounded: HTTP routes are templates (unknown paths share one value), events,
database operations, error kinds, transports, checks and pools come from fixed lists, and ids
appear only where the seed puts them (`room_id` on messages)."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
DB_OPERATIONS = frozenset({"select", "insert", "update", "delete", "begin", "commit", "rollback"})
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
UNMATCHED = "unmatched"
# A statement that starts with WITH is counted by what it changes (the message writer stores a
# batch in one such statement on PostgreSQL), and as a select when it changes nothing.
_CTE_WRITES = (
    ("insert", re.compile(r"\bINSERT\s+INTO\b", re.IGNORECASE)),
    ("update", re.compile(r"\bUPDATE\s+\w+(\s+(AS\s+)?\w+)?\s+SET\b", re.IGNORECASE)),
    ("delete", re.compile(r"\bDELETE\s+FROM\b", re.IGNORECASE)),
)
DB_ERROR_KINDS = ("unavailable", "error")
RATE_LIMITED_TRANSPORTS = ("http", "socket")
REPAIR_REASONS = ("gap", "resync")
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
# Socket.IO's long-polling GETs are parked by design for up to the ping interval: timing them
# would report the ping interval as HTTP latency.
# Socket.IO's polls are parked by design; an MCP request lasts as long as its tool call (a wait).
UNTIMED_ROUTES = frozenset({"/socket.io/", "/mcp"})

# (pool name, connections checked out now, the most it hands out: size plus overflow)
PoolUsage = tuple[str, int, int]

# `*_created` series double every counter's output for no use here.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


@functools.lru_cache(maxsize=1024)
def operation_of(statement: str) -> str:
    """The `operation` label of a SQL statement. Cached: statements come from a small set of
    strings (SQLAlchemy's compiled cache, the writer's constants), some of them long."""
    word = statement.lstrip()[:8].split(None, 1)
    op = word[0].lower() if word else ""
    if op == "with":
        op = next((kind for kind, verb in _CTE_WRITES if verb.search(statement)), "select")
    return op if op in DB_OPERATIONS else "other"


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
        self.http_request_duration = Histogram(
            "agenthub_http_request_duration_seconds",
            "HTTP request handling time, from receipt to the end of the answer",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ready = Gauge(
            "agenthub_ready", "1 when GET /readyz would answer 200, else 0", registry=r
        )
        self.dependency_up = Gauge(
            "agenthub_dependency_up",
            "1 when a readiness check passes (db, redis), else 0",
            ["dependency"],
            registry=r,
        )
        self.rate_limit_refusals = Counter(
            "agenthub_rate_limit_refusals_total",
            "Requests (http) and Socket.IO events (socket) refused by a rate limit",
            ["transport"],
            registry=r,
        )
        self.db_errors = Counter(
            "agenthub_db_errors_total",
            "Database operations that failed: unavailable (unreachable, timed out, locked)"
            " or error (any other database error; constraint conflicts are not counted)",
            ["kind"],
            registry=r,
        )
        # Several nodes on Redis (realtime/cluster.py); 0 / empty on a node without REDIS_URL.
        self.cluster_reader_up = Gauge(
            "agenthub_cluster_reader_up",
            "1 while this node reads the Redis event stream, else 0 (always 0 without REDIS_URL)",
            registry=r,
        )
        self.cluster_reader_reconnects = Counter(
            "agenthub_cluster_reader_reconnects_total",
            "Times the Redis event-stream reader lost its connection",
            registry=r,
        )
        self.cluster_event_lag = Histogram(
            "agenthub_cluster_event_lag_seconds",
            "From another node's publish (the stream entry's time) to this node reading it",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.cluster_repaired = Counter(
            "agenthub_cluster_repaired_messages_total",
            "Messages this node read back from the database because their notification was"
            " late or lost: gap (a later seq came first) or resync (reconnect, trim, periodic)",
            ["reason"],
            registry=r,
        )
        self.cluster_publish_failures = Counter(
            "agenthub_cluster_publish_failures_total",
            "Failed attempts to publish to the Redis event stream (retried), and entries dropped"
            " from a full publish queue",
            registry=r,
        )
        for reason in REPAIR_REASONS:
            self.cluster_repaired.labels(reason)
        self.mcp_sessions = Gauge(
            "agenthub_mcp_sessions", "MCP sessions open on the /mcp endpoint", registry=r
        )
        self.mcp_tool_calls = Counter(
            "agenthub_mcp_tool_calls_total",
            "MCP tool calls on the /mcp endpoint, by tool and outcome (ok or error)",
            ["tool", "outcome"],
            registry=r,
        )
        # Counters start at 0 for every label value, so that rate() sees the first increase
        # and an alert on them has a series to evaluate before anything goes wrong.
        for kind in DB_ERROR_KINDS:
            self.db_errors.labels(kind)
        for transport in RATE_LIMITED_TRANSPORTS:
            self.rate_limit_refusals.labels(transport)
        self.pools = PoolCollector()
        r.register(self.pools)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in HTTP_METHODS else "OTHER"
        self.http_requests_total.labels(method, route, str(status)).inc()
        if route not in UNTIMED_ROUTES:
            self.http_request_duration.labels(method, route).observe(seconds)

    def readiness(self, checks: dict[str, bool]) -> None:
        for name, ok in checks.items():
            self.dependency_up.labels(name).set(1 if ok else 0)
        self.ready.set(1 if all(checks.values()) else 0)

    def mcp_tool_call(self, tool: str, ok: bool) -> None:
        """`tool` is one of the server's own tool names (an unknown name never gets here)."""
        self.mcp_tool_calls.labels(tool, "ok" if ok else "error").inc()

    def rate_limited(self, transport: str) -> None:
        self.rate_limit_refusals.labels(transport).inc()

    def db_error(self, kind: str) -> None:
        self.db_errors.labels(kind if kind in DB_ERROR_KINDS else "error").inc()

    def db_query(self, statement: str, seconds: float) -> None:
        self.db_query_duration.labels(operation_of(statement)).observe(seconds)

    def message_stored(self, room_id: Any) -> None:
        self.messages_total.labels(str(room_id)).inc()


class PoolCollector:
    """`agenthub_db_pool_in_use` and `agenthub_db_pool_max`, read from the connection pools at
    scrape time (two integer reads per pool: no task, and never stale). The pools exist only
    while the app's lifespan runs; `watch` is called with their source then, and with None
    when it ends."""

    def __init__(self) -> None:
        self._source: Callable[[], Iterable[PoolUsage]] | None = None

    def watch(self, source: Callable[[], Iterable[PoolUsage]] | None) -> None:
        self._source = source

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        in_use, most = self._families()
        for name, checked_out, capacity in self._source() if self._source else ():
            in_use.add_metric([name], checked_out)
            most.add_metric([name], capacity)
        yield in_use
        yield most

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "agenthub_db_pool_in_use",
                "Database connections checked out of the pool now",
                labels=["pool"],
            ),
            GaugeMetricFamily(
                "agenthub_db_pool_max",
                "The most connections the pool hands out (its size plus its overflow)",
                labels=["pool"],
            ),
        )


def now() -> float:
    return time.perf_counter()
