"""GET /metrics: the daemon in Prometheus text format (an admin route).

Requests are counted and timed here, as they pass through the app. Everything
else is read at scrape time from the parts' own ``statistics()`` snapshots —
writer, supervisor, hub, relay, database pool, the serve loop's connection
limiter — and from the email outbox, so no other module knows Prometheus
exists.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from quart import Blueprint, Quart, Response, current_app, g, request

from eventd.email.mailer import OutboxStatus
from eventd.errors import Unavailable
from eventd.http.context import Services, admin_route, services
from eventd.http.rate_limits import (
    CONNECTIONS_EXTENSION,
    ConnectionLimiter,
    ConnectionLimiterStatistics,
)

blueprint = Blueprint("metrics", __name__)

disable_created_metrics()  # type: ignore[no-untyped-call]  # no "_created" twin of every counter: nothing here reads them

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One daemon's series: its own registry, so several apps in one process never clash."""

    def __init__(self, s: Services) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "eventd_http_requests", "HTTP requests answered, by route, method and status.",
            ("route", "method", "status"), registry=self.registry,
        )
        self.latency = Histogram(
            "eventd_http_request_duration_seconds", "Time to answer an HTTP request.",
            ("route", "method"), buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.daemon = _DaemonCollector(s)
        self.registry.register(self.daemon)

    def install(self, app: Quart) -> None:
        """Count and time every request of ``app``; serve the series at /metrics."""
        app.extensions["eventd.metrics"] = self
        app.register_blueprint(blueprint)

        @app.before_request
        async def start_clock() -> None:
            g.eventd_started = time.perf_counter()

        @app.after_request
        async def count(response: Response) -> Response:
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            self.requests.labels(route, request.method, str(response.status_code)).inc()
            started = g.get("eventd_started")
            if started is not None:
                self.latency.labels(route, request.method).observe(time.perf_counter() - started)
            return response


@blueprint.get("/metrics")
@admin_route
async def metrics() -> Response:
    s = services()
    metrics: Metrics = current_app.extensions["eventd.metrics"]
    try:
        metrics.daemon.outbox = await s.mailer.status()
    except Unavailable:
        metrics.daemon.outbox = None  # the rest is still worth a scrape
    limiter: ConnectionLimiter | None = current_app.extensions.get(CONNECTIONS_EXTENSION)
    metrics.daemon.connections = limiter.statistics() if limiter is not None else None
    return Response(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)


class _DaemonCollector:
    """The parts' statistics, read when scraped."""

    def __init__(self, s: Services) -> None:
        self._s = s
        # Read by the handler just before a scrape.
        self.outbox: OutboxStatus | None = None
        self.connections: ConnectionLimiterStatistics | None = None  # None: not served by eventd

    def describe(self) -> list[Metric]:
        return []  # collected fresh on every scrape

    def collect(self) -> Iterator[Metric]:
        s = self._s
        supervisor = s.supervisor.statistics()
        registrations = CounterMetricFamily(
            "eventd_registrations", "Registration requests answered, by outcome.",
            labels=("outcome",),
        )
        for outcome, count in sorted(supervisor.outcomes.items()):
            registrations.add_metric((outcome,), count)
        yield registrations
        holds = CounterMetricFamily(
            "eventd_holds", "Holds created, confirmed and expired.", labels=("event",)
        )
        offers = CounterMetricFamily(
            "eventd_offers", "Waitlist offers made, claimed and expired.", labels=("event",)
        )
        for family, prefix, names in ((holds, "holds_", ("created", "confirmed", "expired")),
                                      (offers, "offers_", ("made", "claimed", "expired"))):
            for name in names:
                family.add_metric((name,), supervisor.flow.get(prefix + name, 0))
            yield family
        yield GaugeMetricFamily("eventd_actors_live", "Event actors in memory.",
                                value=supervisor.live_actors)
        yield CounterMetricFamily("eventd_actor_hydrations", "Actors loaded from the database.",
                                  value=supervisor.hydrations)
        yield CounterMetricFamily("eventd_actor_restarts", "Actors restarted after a crash.",
                                  value=supervisor.restarts)

        if self.connections is not None:
            yield GaugeMetricFamily("eventd_http_connections", "Open TCP connections.",
                                    value=self.connections.open_connections)
            refused = CounterMetricFamily(
                "eventd_http_connections_refused",
                "Connections refused (503) for a cap, by the config key that set it.",
                labels=("cap",),
            )
            for cap, count in sorted(self.connections.refused.items()):
                refused.add_metric((f"server.{cap}",), count)
            yield refused

        hub = s.hub.statistics()
        yield GaugeMetricFamily("eventd_websocket_connections", "Open WebSocket streams.",
                                value=hub.connections)
        yield CounterMetricFamily(
            "eventd_websocket_dropped_clients", "Streams closed (1013) for falling behind.",
            value=hub.dropped_slow_clients,
        )

        writer = s.writer.statistics()
        yield _histogram(
            "eventd_writer_batch_size", "Commands committed per transaction (group commit).",
            {float(size): n for size, n in writer.batch_size_counts.items()}, writer.commands,
        )
        yield _histogram(
            "eventd_writer_commit_seconds", "Time to run and COMMIT one batch.",
            writer.commit_seconds_counts, writer.commit_seconds_total,
        )
        yield GaugeMetricFamily("eventd_writer_queued", "Commands waiting for the writer.",
                                value=writer.queued)

        pool = s.db.statistics()
        yield GaugeMetricFamily("eventd_db_pool_connections", "Open database connections.",
                                value=pool.pool_size)
        yield GaugeMetricFamily("eventd_db_pool_idle", "Idle database connections.",
                                value=pool.idle_connections)

        if self.outbox is not None:
            yield GaugeMetricFamily("eventd_email_outbox_pending", "Emails not yet sent.",
                                    value=self.outbox.pending)
            yield GaugeMetricFamily("eventd_email_outbox_failing",
                                    "Pending emails whose last attempt failed.",
                                    value=self.outbox.failing)

        if s.redis is not None:
            yield GaugeMetricFamily("eventd_redis_up", "1 while Redis answers.",
                                    value=int(s.redis.up))
        if s.relay is not None:
            shared = s.relay.statistics()
            relay = CounterMetricFamily("eventd_relay_messages",
                                        "Changes relayed between daemons.", labels=("direction",))
            relay.add_metric(("published",), shared.published)
            relay.add_metric(("received",), shared.received)
            relay.add_metric(("dropped",), shared.dropped)
            yield relay


def _histogram(name: str, documentation: str, counts: Mapping[float, int],
               total: float) -> HistogramMetricFamily:
    """A histogram from per-bucket counts (each observation counted under its upper bound)."""
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    for bound in sorted(counts):
        cumulative += counts[bound]
        if bound != float("inf"):
            buckets.append((_bound(bound), cumulative))
    buckets.append(("+Inf", cumulative))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=total)


def _bound(value: float) -> str:
    return str(float(value))
