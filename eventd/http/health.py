"""/health: is the daemon able to serve? 503 only when the database is down."""

from __future__ import annotations

import contextlib

import trio
from quart import Blueprint, Response

from eventd.errors import Unavailable
from eventd.http.context import json_response, services

blueprint = Blueprint("health", __name__)

HEALTH_PING_TIMEOUT_SECONDS = 2.0


@blueprint.get("/health")
async def health() -> Response:
    s = services()
    database: dict[str, object] = {"status": "down"}
    # Health must answer even when the database hangs, and answer fast.
    with trio.move_on_after(HEALTH_PING_TIMEOUT_SECONDS), contextlib.suppress(Unavailable):
        latency = await s.db.ping()
        database = {"status": "up", "latencyMs": round(latency * 1000, 2)}
    checks = {
        "database": database,
        "actors": {"live": s.supervisor.statistics().live_actors},
        "websocket": {"connections": s.hub.statistics().connections},
    }
    if database["status"] == "down":
        response = json_response({"status": "down", "checks": checks}, 503)
        response.headers["Retry-After"] = "2"
        return response
    return json_response({"status": "ok", "checks": checks})
