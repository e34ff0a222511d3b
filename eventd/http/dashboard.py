"""The live dashboard: ``GET /`` and its static files, shipped inside the package.

The page reads the public API (``GET /events``) and the public streams
(``/ws``, ``/ws/events/{id}``), so it is not an admin route; each event links
to its signup page (:mod:`eventd.http.pages`).
"""

from __future__ import annotations

import html

from quart import Blueprint, Response

from eventd.http import static_files
from eventd.http.context import services

blueprint = Blueprint("dashboard", __name__)

# The only files served under /dashboard/, with their types: nothing else in
# the package can be reached through this route.
ASSET_TYPES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
INDEX = "index.html"
RATIO_PLACEHOLDER = "{{almost_full_ratio}}"


@blueprint.get("/")
async def index() -> Response:
    # The page computes warnings for the events it lists with the daemon's own
    # ratio, the one the streams use for their ``warning``.
    ratio = repr(services().config.websocket.almost_full_ratio)
    page = static_files.read(INDEX).decode().replace(RATIO_PLACEHOLDER, html.escape(ratio))
    return static_files.html_page(page)


@blueprint.get("/dashboard/<name>")
async def asset(name: str) -> Response:
    return static_files.asset(name, ASSET_TYPES, "dashboard")
