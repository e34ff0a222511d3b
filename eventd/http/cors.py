"""CORS: which other origins' pages may call the public routes from a browser.

``server.cors_origins`` lists them (``["https://tickets.example.org"]``);
empty, the default, installs nothing and every answer is as without CORS.

- **Only listed origins**, compared exactly: scheme, host and port, as the
  browser sends ``Origin``. No wildcard and no credentials: what a page of
  another origin may do is what anyone may do without a token.
- **Public routes only.** A route behind ``admin_route`` never sends a CORS
  header, not even to a listed origin, so a browser never hands another
  origin's page an admin answer, whatever token it holds. A preflight to an
  admin route gets the plain ``OPTIONS`` answer, which a browser refuses.
- **Preflight**: an ``OPTIONS`` request with ``Origin`` and
  ``Access-Control-Request-Method``, from a listed origin, for a method the
  route has, is answered ``204`` with that method, the request
  headers among :data:`ALLOWED_HEADERS` that it asked for, and
  ``Access-Control-Max-Age``. Anything else falls through to the plain
  ``OPTIONS`` answer, without CORS headers.
- **Every other answer** of a public route to a listed origin, errors
  included, carries ``Access-Control-Allow-Origin`` with that origin and
  exposes :data:`EXPOSED_HEADERS`. Every answer of a public route carries
  ``Vary: Origin``, to any origin or none, so a cache never serves one
  origin's answer to another.
"""

from __future__ import annotations

from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule

from eventd.http.context import admin_route

PREFLIGHT_MAX_AGE_SECONDS = 600
# Headers a page may send the public routes (besides the ones browsers always may).
ALLOWED_HEADERS = ("Content-Type", "Idempotency-Key", "Registration-Token", "Admission-Token")
# Headers of the answers a page may read (besides the simple ones).
EXPOSED_HEADERS = ("Location", "Retry-After", "Idempotent-Replayed")
_ALLOWED = {name.lower(): name for name in ALLOWED_HEADERS}


async def _guard() -> None: ...


# Every view wrapped by admin_route shares the code of its inner guard.
_ADMIN_GUARD = admin_route(_guard).__code__


def is_admin_view(view: Any) -> bool:
    """Whether ``view`` is behind :func:`~eventd.http.context.admin_route`."""
    while view is not None:
        if getattr(view, "__code__", None) is _ADMIN_GUARD:
            return True
        view = getattr(view, "__wrapped__", None)
    return False


def install(app: QuartTrio, origins: tuple[str, ...]) -> None:
    """Answer preflights and mark answers for ``origins``; nothing when there are none."""
    if not origins:
        return
    allowed = frozenset(origins)
    admin_endpoints: dict[str, bool] = {}

    def public(rule: Rule | None) -> bool:
        if rule is None or rule.endpoint is None:  # no route: a 404 or 405 answers
            return False
        admin = admin_endpoints.get(rule.endpoint)
        if admin is None:
            admin = admin_endpoints[rule.endpoint] = is_admin_view(
                app.view_functions.get(rule.endpoint)
            )
        return not admin

    def is_preflight() -> bool:
        return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers

    @app.before_request
    async def preflight() -> Response | None:
        origin = request.headers.get("Origin")
        if not is_preflight() or origin not in allowed:
            return None
        method = request.headers["Access-Control-Request-Method"]
        # The route the real request will take: one path has a rule per method
        # (GET /events/{id} is public, PATCH and DELETE are admin).
        adapter = app.create_url_adapter(request)
        if adapter is None:
            return None
        try:
            rule, _ = adapter.match(method=method, return_rule=True)
        except HTTPException:  # no such route or method
            return None
        if not public(rule):
            return None
        asked = request.headers.get("Access-Control-Request-Headers", "")
        headers = [
            _ALLOWED[name] for name in (part.strip().lower() for part in asked.split(","))
            if name in _ALLOWED
        ]
        response = Response(b"", status=204)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = method
        if headers:
            response.headers["Access-Control-Allow-Headers"] = ", ".join(headers)
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_SECONDS)
        for name in ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"):
            response.vary.add(name)
        return response

    @app.after_request
    async def mark(response: Response) -> Response:
        if not public(request.url_rule):
            return response
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if origin in allowed and not is_preflight():
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        return response
