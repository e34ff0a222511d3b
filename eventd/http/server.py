"""hypercorn, set up for eventd: configuration, listening sockets, and three fixes.

A peer is given up after ``3 × websocket.ping_interval_seconds`` of silence in
either direction: no byte from it (no pong) ends the connection through
hypercorn's read timeout; no byte accepted by it (a client that stopped
reading, its window shut) ends it through the kernel's TCP_USER_TIMEOUT. The
second matters because hypercorn shields its socket writes from cancellation:
without it, a send to a client that never reads would wait forever, and so
would a graceful shutdown.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import hypercorn.config
import trio
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import Body, Data
from hypercorn.trio import tcp_server
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app
from quart_trio import QuartTrio
from wsproto.events import Ping

from eventd.config import Config

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0


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
    # Idle keep-alive connections also hold a graceful stop: keep it short.
    hc.keep_alive_timeout = 5
    # hypercorn pings every websocket this often; a peer that answers nothing
    # (no pong, no data) for a few intervals is dead and its connection dropped.
    hc.websocket_ping_interval = config.websocket.ping_interval_seconds
    hc.read_timeout = max(1, math.ceil(peer_timeout_seconds(config)))
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
    await worker_serve(
        wrap_app(app, hc.wsgi_max_body_size, None),
        hc,
        sockets=sockets,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


def _closed_event(stream: ws_stream.WSStream) -> trio.Event:
    event: trio.Event | None = stream.__dict__.get("_eventd_closed_event")
    if event is None:
        event = stream.__dict__["_eventd_closed_event"] = trio.Event()
    return event


def _get_closed(stream: ws_stream.WSStream) -> bool:
    return bool(stream.__dict__.get("_eventd_closed", False))


def _set_closed(stream: ws_stream.WSStream, value: bool) -> None:
    stream.__dict__["_eventd_closed"] = value
    if value:
        _closed_event(stream).set()


async def _send_pings(stream: ws_stream.WSStream) -> None:
    # hypercorn's own loop sleeps a whole ping interval between looks at
    # `closed`, holding a closed connection (its TCP close, and a graceful
    # shutdown) that long. Same pings, but woken the moment the stream closes.
    interval = stream.config.websocket_ping_interval or math.inf
    while True:
        with trio.move_on_after(interval):
            await _closed_event(stream).wait()
        if stream.closed:
            return
        await stream._send_wsproto_event(Ping())


# `closed` becomes a property so that setting it wakes the ping task.
ws_stream.WSStream.closed = property(_get_closed, _set_closed)  # type: ignore[assignment]
ws_stream.WSStream._send_pings = _send_pings  # type: ignore[method-assign,assignment]


_hypercorn_handle = ws_stream.WSStream.handle


async def _handle(stream: ws_stream.WSStream, event: Any) -> None:
    # A body arriving on a websocket stream the app has already refused makes
    # hypercorn send a second response, which h11 rejects with an error.
    if isinstance(event, Body | Data) and stream.state == ws_stream.ASGIWebsocketState.HTTPCLOSED:
        return
    await _hypercorn_handle(stream, event)


_hypercorn_run = tcp_server.TCPServer.run


async def _run_contained(server: tcp_server.TCPServer) -> None:
    # hypercorn lets an error on one connection escape its task and stop the
    # whole server. The connection is closed by hypercorn's own `finally`;
    # here the error stays with it.
    try:
        await _hypercorn_run(server)
    except Exception:
        log.exception("hypercorn failed on one connection; that connection was closed")


ws_stream.WSStream.handle = _handle  # type: ignore[method-assign,assignment]
tcp_server.TCPServer.run = _run_contained  # type: ignore[method-assign,assignment]
