"""``GET /api``: Swagger UI over ``/api/openapi.json``, served from the package.

Every file the page loads comes from this daemon — Swagger UI itself is
vendored under ``static/swagger-ui/`` (see its ``VENDORED.md``) — so it works
with no internet, and a Content-Security-Policy holds the page to this origin.
Public, like the document it shows.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

from quart import Blueprint, Response, request

from eventd.errors import NotFound, echo

blueprint = Blueprint("swagger_ui", __name__)

# The only files served under /api/assets/: name -> (file under static/, type).
ASSETS = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "api.js": ("api.js", "text/javascript; charset=utf-8"),
}
PAGE = "api.html"
# Swagger UI sets inline styles, hence 'unsafe-inline' for styles (never for scripts).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


@functools.cache
def _read(path: str) -> tuple[bytes, str]:
    """A file's bytes and its entity tag."""
    data = (resources.files("eventd.http") / "static" / path).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:32]


@blueprint.get("/api")
async def page() -> Response:
    return await _send(PAGE, "text/html; charset=utf-8")


@blueprint.get("/api/assets/<name>")
async def asset(name: str) -> Response:
    found = ASSETS.get(name)
    if found is None:
        raise NotFound(f"There is no Swagger UI file {echo(name)}.")
    return await _send(*found)


async def _send(path: str, content_type: str) -> Response:
    """The file, or ``304`` when the client's copy (``If-None-Match``) is current."""
    data, etag = _read(path)
    response = Response(data, content_type=content_type)
    response.set_etag(etag)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    # Files that change with the package: revalidate (cheaply, by ETag), never go stale.
    response.headers["Cache-Control"] = "no-cache"
    return await response.make_conditional(request)
