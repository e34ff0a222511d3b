"""/health: is the daemon able to serve? 503 only when the database is down.

Besides the checks that say so, it shows the open WebSocket streams, the live
actors and the open connections: how many, the caps, and how many were
refused at a cap since start (``server.max_connections``,
``server.max_connections_per_client``).
"""

from __future__ import annotations

import contextlib
import time

import trio
from quart import Blueprint, Response, current_app

from eventd.email.mailer import Mailer
from eventd.errors import Unavailable
from eventd.http.context import Services, json_response, services
from eventd.http.rate_limits import CONNECTIONS_EXTENSION, ConnectionLimiter
from eventd.webhooks.deliverer import WebhookDeliverer

blueprint = Blueprint("health", __name__)

HEALTH_PING_TIMEOUT_SECONDS = 2.0


@blueprint.get("/health")
async def health() -> Response:
    s = services()
    database: dict[str, object] = {"status": "down"}
    # Health must answer even when the database hangs, and answer fast.
    # Within the request's own deadline too, so a hung database reads "down", not a timeout.
    timeout = min(HEALTH_PING_TIMEOUT_SECONDS, s.config.server.request_timeout_seconds / 2)
    email: dict[str, object] = {"status": "unknown", "transport": s.config.email.transport}
    webhooks: dict[str, object] = {"status": "unknown"}
    # The outbox checks read the database too: a database that answers a ping
    # but not a query in time (a partition mid-transaction) is down as well.
    with trio.move_on_after(timeout) as waited, contextlib.suppress(Unavailable):
        latency = await s.db.ping()
        database = {"status": "up", "latencyMs": round(latency * 1000, 2)}
        email = await _email_check(s.mailer, s.config.email.transport)
        webhooks = await _webhooks_check(s.webhooks)
    if waited.cancelled_caught:
        database = {"status": "down"}
    checks: dict[str, object] = {
        "database": database,
        "email": email,
        "redis": await _redis_check(s),
        "webhooks": webhooks,
        "actors": {"live": s.supervisor.statistics().live_actors},
        "websocket": {"connections": s.hub.statistics().connections},
    }
    limiter: ConnectionLimiter | None = current_app.extensions.get(CONNECTIONS_EXTENSION)
    if limiter is not None:
        checks["connections"] = _connections(limiter)
    if database["status"] == "down":
        response = json_response({"status": "down", "checks": checks}, 503)
        response.headers["Retry-After"] = "2"
        return response
    degraded = any(
        isinstance(check, dict) and check.get("status") in ("degraded", "down")
        for check in checks.values()
    )
    return json_response({"status": "degraded" if degraded else "ok", "checks": checks})


def _connections(limiter: ConnectionLimiter) -> dict[str, object]:
    found = limiter.statistics()
    return {
        "open": found.open_connections,
        "clients": found.clients,
        "max": found.max_connections,
        "maxPerClient": found.max_connections_per_client,
        "refused": found.refused["max_connections"],
        "refusedPerClient": found.refused["max_connections_per_client"],
    }


async def _email_check(mailer: Mailer, transport: str) -> dict[str, object]:
    status = await mailer.status()
    return {
        "status": "degraded" if status.failing else "up",
        "transport": status.transport,
        "pending": status.pending,
        "failing": status.failing,
        "oldestPendingSeconds": status.oldest_pending_seconds,
    }


async def _webhooks_check(deliverer: WebhookDeliverer | None) -> dict[str, object]:
    """The webhook backlog; ``degraded`` while an endpoint's messages are failing."""
    if deliverer is None:
        return {"status": "disabled"}
    try:
        status = await deliverer.status()
    except Unavailable:
        return {"status": "unknown"}
    return {
        "status": "degraded" if status.failing_endpoints else "up",
        "pending": status.pending,
        "failingEndpoints": status.failing_endpoints,
        "disabledEndpoints": status.disabled_endpoints,
        "oldestPendingSeconds": status.oldest_pending_seconds,
    }


async def _redis_check(s: Services) -> dict[str, object]:
    if s.redis is None:
        return {"status": "disabled"}
    if not s.redis.up:
        return {"status": "down"}
    started = time.perf_counter()
    if not await s.redis.ping():
        return {"status": "down"}
    return {"status": "up", "latencyMs": round((time.perf_counter() - started) * 1000, 2)}
