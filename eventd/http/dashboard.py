"""The live dashboard: ``GET /`` and its static files, shipped inside the package.

Plain HTML, CSS and JavaScript with no build step and nothing fetched from
elsewhere. The page reads the public API (``GET /events``) and the public
streams (``/ws``, ``/ws/events/{id}``), so it is not an admin route. Every
response is locked to this origin by a Content-Security-Policy.
"""

from __future__ import annotations

import functools
import html
import re
from importlib import resources

from quart import Blueprint, Response, request

from eventd.errors import NotFound, echo
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
# A Host header fit to name this origin's websockets in the policy; any other
# (a client's own odd header) gets the policy without them, never a broken one.
_PLAIN_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


@functools.cache
def _read(name: str) -> bytes:
    return (resources.files("eventd.http") / "static" / name).read_bytes()


@blueprint.get("/")
async def index() -> Response:
    # The page computes warnings for the events it lists with the daemon's own
    # ratio, the one the streams use for their ``warning``.
    ratio = repr(services().config.websocket.almost_full_ratio)
    page = _read(INDEX).decode().replace(RATIO_PLACEHOLDER, html.escape(ratio))
    return _locked(Response(page, content_type="text/html; charset=utf-8"))


@blueprint.get("/dashboard/<name>")
async def asset(name: str) -> Response:
    content_type = ASSET_TYPES.get(name)
    if content_type is None:
        raise NotFound(f"There is no dashboard file {echo(name)}.")
    return _locked(Response(_read(name), content_type=content_type))


def _locked(response: Response) -> Response:
    """Only this origin may supply scripts, styles and connections (its websockets too)."""
    host = request.host
    sockets = f" ws://{host} wss://{host}" if _PLAIN_HOST.fullmatch(host) else ""
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; "
        f"connect-src 'self'{sockets}; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    # Small files that change with the package: revalidate rather than go stale.
    response.headers["Cache-Control"] = "no-cache"
    return response
