"""hypercorn, set up for eventd: its configuration, the sockets, and the serve loop.

A peer is given up after ``3 × websocket.ping_interval_seconds`` of silence in
either direction: no byte from it (no pong) ends the connection through
hypercorn's read timeout; no byte accepted by it (a client that stopped
reading, its window shut) ends it through the kernel's TCP_USER_TIMEOUT. The
second matters because writes wait for the socket, shielded from
cancellation: without it, a write to a client that never reads would wait
forever, and so would a graceful stop.

:func:`serve` is hypercorn's trio ``worker_serve`` for eventd's plain TCP
sockets, with two differences: each connection is served by
:class:`~eventd.http.raw_websocket.RawWebsocketTCPServer` (the raw websocket
write path), and an error on one connection stays with it. hypercorn's own
loop lets any error but an ``OSError`` escape a connection's task, and that
stops the whole server. Here the error is logged once, in one line at WARNING
(with its traceback when logging at debug); hypercorn has already closed that
connection, and every other goes on. A client that closes or resets its
connection is no error: hypercorn ends such a connection quietly.

Before a connection is served, the :class:`~eventd.http.rate_limits.ConnectionLimiter`
counts it against ``server.max_connections`` and
``server.max_connections_per_client``. One beyond a cap is answered at once,
without reading its request: ``503 unavailable``, ``Connection: close``
(a WebSocket handshake is so refused before the upgrade), and closed.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import hypercorn.config
import orjson
import trio
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState
from hypercorn.utils import ShutdownError, raise_shutdown, repr_socket_addr, wrap_app
from quart_trio import QuartTrio

from eventd.config import Config
from eventd.http.problems import PROBLEM_JSON, PROBLEMS
from eventd.http.rate_limits import CONNECTIONS_EXTENSION, Cap, ConnectionLimiter
from eventd.http.raw_websocket import RawWebsocketTCPServer

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0
# A refused connection is read (and what comes dropped) until its client
# closes, at most this long and this much: closing with its request unread
# would reset the connection, and the client might never read the 503.
REFUSAL_LINGER_SECONDS = 2.0
REFUSAL_LINGER_BYTES = 65536
REFUSAL_RETRY_AFTER_SECONDS = 1


class CannotListen(Exception):
    """``server.bind`` cannot be bound (in use, not permitted, no such address)."""


def hypercorn_config(config: Config) -> hypercorn.config.Config:
    hc = hypercorn.config.Config()
    host, port = config.server.host, config.server.port
    hc.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    hc.graceful_timeout = SHUTDOWN_GRACE_SECONDS
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.backlog = 1024
    # With several workers on one port, each binds it with SO_REUSEPORT (see eventd.workers).
    hc.workers = config.server.workers
    # No ping task per websocket: eventd's fan-out pings every stream from one
    # task (eventd.http.fanout). A peer that answers nothing (no pong, no data)
    # for three intervals is dead, and hypercorn's read timeout drops it.
    hc.websocket_ping_interval = None
    hc.read_timeout = max(1, math.ceil(peer_timeout_seconds(config)))
    # Longer than clients keep an idle connection (httpx: 5 s), so the client
    # lets go first. A server that closes at the moment a client reuses the
    # connection resets a request already on its way: with both at 5 s, a
    # storm's reused connections were reset now and then. Idle connections do
    # not hold up a graceful stop: hypercorn closes them as the stop begins.
    # An idle connection is a silent peer too, and hypercorn stops reading
    # from it at the read timeout but closes it only at the keep-alive's: in
    # between, a request on it would be left unread. So the keep-alive ends
    # no later than the read timeout.
    hc.keep_alive_timeout = min(config.server.keep_alive_seconds, hc.read_timeout)
    # Read by eventd's server (eventd.http.raw_websocket), which closes a
    # bigger message with 1009 as its frame header comes.
    hc.websocket_max_message_size = config.websocket.max_message_bytes
    return hc


def peer_timeout_seconds(config: Config) -> float:
    return 3 * config.websocket.ping_interval_seconds


async def serve_http(
    app: QuartTrio,
    config: Config,
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``server.bind`` until ``shutdown_trigger`` returns."""
    hc = hypercorn_config(config)
    try:
        sockets = hc.create_sockets()
    except OSError as exc:
        raise CannotListen(f"cannot listen on {config.server.bind}: {exc.strerror}") from exc
    user_timeout_ms = max(1000, int(peer_timeout_seconds(config) * 1000))
    for sock in sockets.insecure_sockets:
        # Inherited by every accepted connection.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, user_timeout_ms)
        sock.listen(hc.backlog)
    limiter = ConnectionLimiter(
        config.server.max_connections, config.server.max_connections_per_client
    )
    app.extensions[CONNECTIONS_EXTENSION] = limiter  # for /health and /metrics
    await serve(
        wrap_app(app, hc.wsgi_max_body_size, None),
        hc,
        sockets.insecure_sockets,
        shutdown_trigger,
        limiter=limiter,
        header_timeout_seconds=config.server.header_timeout_seconds,
        task_status=task_status,
    )


async def serve(
    app: AppWrapper,
    hc: hypercorn.config.Config,
    sockets: list[socket.socket],
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    limiter: ConnectionLimiter | None = None,
    header_timeout_seconds: float = math.inf,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on listening ``sockets`` until ``shutdown_trigger`` returns.

    hypercorn's ``worker_serve``, step for step, for plain TCP sockets: the
    app's lifespan starts first; at the trigger, the server stops accepting,
    closes idle connections, gives busy ones ``hc.graceful_timeout`` to
    finish, then ends the lifespan. ``task_status`` gets the URLs served.
    Connections beyond the ``limiter``'s caps are refused (none without one);
    a connection's first request head is due within ``header_timeout_seconds``.
    """
    hc.set_statsd_logger_class(StatsdLogger)
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(app, hc, lifespan_state)
    context = WorkerContext(max_requests=None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as connections:
            listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s)) for s in sockets]
            handler = partial(
                _serve_connection,
                app,
                hc,
                context,
                ConnectionState(lifespan_state.copy()),
                limiter or ConnectionLimiter(0, 0),
                header_timeout_seconds,
            )
            task_status.started(
                [f"http://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets]
            )
            try:
                async with trio.open_nursery() as serving:
                    serving.start_soon(raise_shutdown, shutdown_trigger)
                    serving.start_soon(
                        partial(
                            trio.serve_listeners, handler, listeners, handler_nursery=connections
                        )
                    )
            except* ShutdownError:
                pass
            finally:
                await context.terminated.set()  # idle connections close now
                connections.cancel_scope.deadline = trio.current_time() + hc.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


async def _serve_connection(
    app: AppWrapper,
    hc: hypercorn.config.Config,
    context: WorkerContext,
    state: ConnectionState,
    limiter: ConnectionLimiter,
    header_timeout_seconds: float,
    stream: trio.SocketStream,
) -> None:
    """Serve one TCP connection (or refuse it, over a cap); an error on it ends it alone."""
    try:
        address = stream.socket.getpeername()
    except OSError:  # reset before it was served
        await stream.aclose()
        return
    peer = repr_socket_addr(stream.socket.family, address)
    client = str(address[0])
    refused_by = limiter.open_nowait(client)
    if refused_by is not None:
        await _refuse(stream, refused_by)
        return
    try:
        await RawWebsocketTCPServer(
            app, hc, context, state, stream, header_timeout_seconds=header_timeout_seconds
        ).run()
    except* Exception as group:  # hypercorn's own `finally` has closed the connection
        log.warning(
            "connection from %s closed after an error: %s",
            peer,
            "; ".join(f"{type(error).__name__}: {error}" for error in _leaves(group)),
            exc_info=group if log.isEnabledFor(logging.DEBUG) else None,
        )
    finally:
        limiter.close(client)


def _refusal(cap: Cap) -> bytes:
    """The whole answer to a connection over ``cap``: a problem document, then the end."""
    unavailable = PROBLEMS["unavailable"]
    detail = (
        "The server has as many connections open as it serves; retry shortly."
        if cap == "max_connections"
        else "This address has as many connections open as one client may; close one first."
    )
    body = orjson.dumps({
        "type": "about:blank",
        "title": unavailable.title,
        "status": unavailable.status,
        "code": "unavailable",
        "detail": detail,
    })
    head = (
        f"HTTP/1.1 {unavailable.status} Service Unavailable\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {REFUSAL_RETRY_AFTER_SECONDS}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_REFUSALS: dict[Cap, bytes] = {
    cap: _refusal(cap) for cap in ("max_connections", "max_connections_per_client")
}


async def _refuse(stream: trio.SocketStream, cap: Cap) -> None:
    """Answer 503 and close, the request unread; what the client sends meanwhile is dropped.

    No longer counted as a connection: the cap was reached already, and the
    refusal takes little and ends soon.
    """
    async with stream:
        with trio.move_on_after(REFUSAL_LINGER_SECONDS):
            try:
                await stream.send_all(_REFUSALS[cap])
                await stream.send_eof()
                dropped = 0
                while dropped < REFUSAL_LINGER_BYTES and (
                    chunk := await stream.receive_some(REFUSAL_LINGER_BYTES)
                ):
                    dropped += len(chunk)
            except trio.BrokenResourceError:  # reset: gone already
                pass


def _leaves(group: BaseExceptionGroup[Exception]) -> list[Exception]:
    errors: list[Exception] = []
    for error in group.exceptions:
        errors += _leaves(error) if isinstance(error, BaseExceptionGroup) else [error]
    return errors
