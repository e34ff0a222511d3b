"""What every route uses: the daemon's services, the JSON body, replies, admin checks."""

from __future__ import annotations

import functools
import hmac
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import orjson
from quart import Response, current_app, request

from eventd.errors import (
    NotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from eventd.http.connection import Request
from eventd.http.schemas import M, parse_body
from eventd.services import Services

P = ParamSpec("P")
R = TypeVar("R")


def services() -> Services:
    found: Services = current_app.extensions["eventd"]
    return found


def read_body(model: type[M]) -> M:
    """The request's JSON body, checked for type, size and schema."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"Send the body as application/json, not {request.mimetype or 'nothing'}."
        )
    assert isinstance(request, Request)
    return parse_body(model, request.complete_body)


def parse_id(text: str, what: str) -> uuid.UUID:
    """A path id; one that is not a UUID names nothing, so it is not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"{what} {text} does not exist.") from None


def json_response(
    body: Any, status: int = 200, *, location: str | None = None
) -> Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Location": location} if location else None
    return Response(data, status=status, content_type="application/json", headers=headers)


def no_content() -> Response:
    return Response(b"", status=204)


def admin_route(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Require ``Authorization: Bearer <token>`` when admin tokens are configured."""

    @functools.wraps(handler)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        tokens = services().config.auth.admin_tokens
        if tokens:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            presented = given.strip().encode()
            # Compare against every token, so timing tells nothing about which matched.
            matched = False
            for token in tokens:
                matched |= hmac.compare_digest(presented, token.encode())
            if scheme.lower() != "bearer" or not matched:
                raise Unauthorized("This route needs a valid admin bearer token.")
        return await handler(*args, **kwargs)

    return guarded
