"""What every route uses: the daemon's services, the JSON body, replies, admin checks."""

from __future__ import annotations

import dataclasses
import functools
import hmac
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import orjson
from quart import Response, current_app, request

from eventd.actors.reads import EventReads
from eventd.actors.supervisor import Supervisor
from eventd.config import Config
from eventd.email.mailer import Mailer
from eventd.errors import (
    NotFound,
    Unauthorized,
    UnsupportedMediaType,
    echo,
)
from eventd.http.connection import Request
from eventd.http.schemas import M, parse_body
from eventd.realtime.hub import Hub
from eventd.realtime.relay import Relay
from eventd.storage.database import Database
from eventd.storage.redis import Redis
from eventd.storage.writer import Writer

P = ParamSpec("P")
R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class Services:
    """What the HTTP face needs from the rest of the daemon, gathered in one object."""

    config: Config
    db: Database
    writer: Writer
    supervisor: Supervisor
    reads: EventReads
    hub: Hub
    mailer: Mailer
    redis: Redis | None = None  # None: not configured
    relay: Relay | None = None


def services() -> Services:
    found: Services = current_app.extensions["eventd"]
    return found


def current_request() -> Request:
    """The request being handled, looked up once.

    Each ``request.x`` goes through werkzeug's context proxy, about a
    microsecond a lookup: code that reads the request several times on every
    POST takes it from here once.
    """
    found = request._get_current_object()  # type: ignore[attr-defined]
    assert isinstance(found, Request)
    return found


def header_values(current: Request, name: bytes) -> list[str]:
    """Every value sent for the request header ``name`` (lower case), in order.

    Read from the ASGI scope, whose names are lower case already: werkzeug's
    ``request.headers`` lower-cases every name it holds on each lookup, and
    this runs on every POST.
    """
    return [value.decode("latin-1") for key, value in current.scope["headers"] if key == name]


def read_body(model: type[M]) -> M:
    """The request's JSON body, checked for type, size and schema."""
    current = current_request()
    # The usual Content-Type, exactly, needs no parsing of its parameters.
    if header_values(current, b"content-type") != ["application/json"] and (
        current.mimetype != "application/json"
    ):
        raise UnsupportedMediaType(
            f"Send the body as application/json, not {echo(current.mimetype) or 'nothing'}."
        )
    return parse_body(model, current.complete_body)


def parse_id(text: str, what: str) -> uuid.UUID:
    """A path id; one that is not a UUID names nothing, so it is not found.

    Once parsed, say the id back as the UUID, not as ``text``: ``uuid.UUID``
    also takes braces, ``urn:uuid:`` and any number of hyphens.
    """
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"{what} {echo(text)} does not exist.") from None


def json_response(
    body: Any, status: int = 200, *, location: str | None = None
) -> Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    response = Response(data, status=status, content_type="application/json")
    if location:
        # Added afterwards: ``headers=`` would copy a mapping into werkzeug's
        # Headers item by item, half again the cost of the whole response.
        response.headers.add("Location", location)
    return response


def no_content() -> Response:
    return Response(b"", status=204)


def presents_admin_token() -> bool:
    """Does the request carry one of ``auth.admin_tokens`` (``Authorization: Bearer``)?

    False when none are configured: then admin routes are open to all, and
    an open route proves nobody an admin.
    """
    tokens = services().config.auth.admin_tokens
    if not tokens:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    presented = given.strip().encode()
    # Compare against every token, so timing tells nothing about which matched.
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(presented, token.encode())
    return scheme.lower() == "bearer" and matched


def admin_route(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Require ``Authorization: Bearer <token>`` when admin tokens are configured."""

    @functools.wraps(handler)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        if services().config.auth.admin_tokens and not presents_admin_token():
            raise Unauthorized("This route needs a valid admin bearer token.")
        return await handler(*args, **kwargs)

    return guarded
