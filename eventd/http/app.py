"""The quart-trio application: routes, the request deadline, and error mapping."""

from __future__ import annotations

import logging

import trio
from quart import Response
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from eventd.errors import EventdError, Unavailable
from eventd.http import (
    attendees,
    checkins,
    cors,
    dashboard,
    events,
    exports,
    health,
    openapi,
    pages,
    problems,
    queue,
    registrations,
    streams,
    swagger_ui,
    tickets,
    webhooks,
)
from eventd.http.connection import Connection, Request
from eventd.http.context import Services, current_request
from eventd.http.metrics import Metrics
from eventd.http.rate_limits import install as install_rate_limit

log = logging.getLogger(__name__)


class EventdApp(QuartTrio):
    asgi_http_class = Connection
    request_class = Request
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
    app.config["BODY_TIMEOUT"] = app.request_timeout_seconds
    app.extensions["eventd"] = services
    Metrics(services).install(app)  # first, so its clock covers every other hook
    for module in (events, attendees, registrations, exports, health, streams, dashboard,
                   openapi, swagger_ui, pages, queue, tickets, webhooks):
        app.register_blueprint(module.blueprint)
    checkins.install(app)

    @app.before_request
    async def body_as_read() -> None:
        # The connection read the body before the request was handled
        # (eventd.http.connection); what was wrong with it is answered here.
        error = current_request().body_error
        if error is not None:
            raise error

    install_rate_limit(app, services.config.limits)
    cors.install(app, services.config.server.cors_origins)

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
