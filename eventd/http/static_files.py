"""The package's own static files, and the policy every page of this origin is sent with.

The dashboard and the public pages are plain HTML, CSS and JavaScript with no
build step and nothing fetched from elsewhere: each file is read from
``eventd/http/static`` once, and every answer is locked to this origin by a
Content-Security-Policy.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from quart import Response, request

from eventd.errors import NotFound, echo

# A Host header fit to name this origin's websockets in the policy; any other
# (a client's own odd header) gets the policy without them, never a broken one.
_PLAIN_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


@functools.cache
def read(name: str) -> bytes:
    return (resources.files("eventd.http") / "static" / name).read_bytes()


def asset(name: str, types: dict[str, str], what: str) -> Response:
    """One of the files ``types`` lists (name → content type), and nothing else."""
    content_type = types.get(name)
    if content_type is None:
        raise NotFound(f"There is no {what} file {echo(name)}.")
    return locked(Response(read(name), content_type=content_type))


def html_page(text: str) -> Response:
    return locked(Response(text, content_type="text/html; charset=utf-8"))


def locked(response: Response) -> Response:
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
    # The manage page's address holds its token: never hand it on as a referrer.
    response.headers["Referrer-Policy"] = "no-referrer"
    # Small files that change with the package: revalidate rather than go stale.
    response.headers["Cache-Control"] = "no-cache"
    return response
