"""The quart-trio application: routes, the request deadline, and error mapping."""

from __future__ import annotations

import logging

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from eventd.errors import EventdError, PayloadTooLarge, Unavailable
from eventd.http import (
    attendees,
    dashboard,
    events,
    health,
    openapi,
    problems,
    registrations,
    streams,
    swagger_ui,
)
from eventd.http.metrics import Metrics
from eventd.http.rate_limits import install as install_rate_limit
from eventd.services import Services

log = logging.getLogger(__name__)


class EventdApp(QuartTrio):
    request_timeout_seconds = 10.0

    async def dispatch_request(self, request_context=None):  # type: ignore[no-untyped-def]
        # Every request answers within the deadline: a wait on a busy actor or
        # an unreachable database becomes a 503, never a hang.
        with trio.move_on_after(self.request_timeout_seconds):
            return await super().dispatch_request(request_context)
        raise Unavailable("The request could not be completed in time; please retry.")


def create_app(services: Services) -> EventdApp:
    app = EventdApp("eventd", static_folder=None)  # no /static route: each page serves its own
    app.request_timeout_seconds = services.config.server.request_timeout_seconds
    app.config["MAX_CONTENT_LENGTH"] = services.config.limits.max_body_bytes
    app.extensions["eventd"] = services
    Metrics(services).install(app)  # first, so its clock covers every other hook
    for module in (events, attendees, registrations, health, streams, dashboard, openapi,
                   swagger_ui):
        app.register_blueprint(module.blueprint)

    @app.before_request
    async def read_whole_body() -> None:
        # hypercorn takes the next request on a keep-alive connection only once
        # this one's body is read, so read it (within the limit) even when the
        # answer — a 404, 405 or 415 — will not need it. A request that
        # announces no body (most GETs) has none to read.
        if not request.content_length and "Transfer-Encoding" not in request.headers:
            return
        try:
            await request.get_data(cache=True)
        except RequestEntityTooLarge:
            limit = services.config.limits.max_body_bytes
            raise PayloadTooLarge(f"The body is over the limit of {limit} bytes.") from None

    install_rate_limit(app, services.config.limits)  # after the body is read, as above

    @app.errorhandler(EventdError)
    async def domain_error(error: EventdError) -> Response:
        return problems.from_error(error)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        return problems.from_http_exception(error)

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.error("unhandled error", exc_info=error)
        return problems.internal_error()

    return app
