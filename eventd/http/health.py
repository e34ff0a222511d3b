"""/health: is the daemon able to serve? 503 only when the database is down."""

from __future__ import annotations

from quart import Blueprint, Response

from eventd.errors import Unavailable
from eventd.http.context import json_response, services

blueprint = Blueprint("health", __name__)


@blueprint.get("/health")
async def health() -> Response:
    s = services()
    try:
        latency = await s.db.ping()
        database = {"status": "up", "latencyMs": round(latency * 1000, 2)}
    except Unavailable:
        database = {"status": "down"}
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
