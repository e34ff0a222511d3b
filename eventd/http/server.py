"""hypercorn, set up for eventd: configuration, sockets, a raw websocket write path, fixes.

A peer is given up after ``3 × websocket.ping_interval_seconds`` of silence in
either direction: no byte from it (no pong) ends the connection through
hypercorn's read timeout; no byte accepted by it (a client that stopped
reading, its window shut) ends it through the kernel's TCP_USER_TIMEOUT. The
second matters because writes wait for the socket, shielded from
cancellation: without it, a write to a client that never reads would wait
forever, and so would a graceful shutdown.

Everything that reaches into hypercorn's internals is in this module: the
raw write path for websocket streams (:class:`RawWebsocket`), a leaner read
loop (a thousand idle connections each wait in it), a response written in one
piece (:func:`_stream_send`), a keep-alive timer with no task per request
(:class:`KeepAliveTimer`), a request's body handed to the app without a
trip through the scheduler per message (:func:`_spawn_app`), and two fixes
(a body on a refused websocket handshake; one connection's error kept to it).
:func:`_check_hypercorn` refuses, at import, a hypercorn it was not written
against — an upgrade fails loudly at start instead of quietly corrupting
streams.
"""

from __future__ import annotations

import contextvars
import importlib.metadata
import logging
import math
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import hypercorn.config
import trio
from hypercorn.events import Closed, RawData
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import Body, Data, EndBody, Response
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio import task_group, tcp_server
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app
from quart_trio import QuartTrio
from wsproto.connection import ConnectionState

from eventd.config import Config

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0

# The hypercorn releases whose internals this module was written against.
TESTED_HYPERCORN = ((0, 18),)


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
    # Longer than clients keep an idle connection (httpx: 5 s), so the client
    # lets go first. A server that closes at the moment a client reuses the
    # connection resets a request already on its way: with both at 5 s, a
    # storm's reused connections were reset now and then. Idle connections do
    # not hold up a graceful stop: KeepAliveTimer closes them at once.
    hc.keep_alive_timeout = config.server.keep_alive_seconds
    # No ping task per websocket: eventd's fan-out pings every stream from one
    # task (eventd.http.fanout). A peer that answers nothing (no pong, no data)
    # for three intervals is dead, and hypercorn's read timeout drops it.
    hc.websocket_ping_interval = None
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


# ---------------------------------------------------------------------------
# The raw websocket write path


class RawWebsocket:
    """One HTTP/1.1 websocket's socket, written past hypercorn, quart and wsproto.

    Server frames are never masked, so a message's frame is the same bytes on
    every connection: the app frames it once and hands it here, where it is
    written with one non-blocking ``write`` — no task switch, no ASGI message,
    no framing per connection. What the socket cannot take now waits in a
    backlog until :meth:`drain`.

    From the claim on, hypercorn's own bytes on this connection (the 101
    response, pongs, the close frame) come through :meth:`send` as well, under
    hypercorn's send lock and behind the backlog, so frames never interleave.
    Frames are written only while wsproto's connection is open: once a close
    has been sent or received, nothing more goes out after it.
    """

    __slots__ = ("_server", "_socket", "_stream", "_backlog", "_broken", "on_gone")

    def __init__(self, server: tcp_server.TCPServer, stream: ws_stream.WSStream) -> None:
        self._server = server
        self._socket = server.stream.socket
        self._stream = stream
        self._backlog = bytearray()
        self._broken = False
        # Called once the client is gone (closed, reset, timed out), from hypercorn's task.
        self.on_gone: Callable[[], None] | None = None

    @property
    def open(self) -> bool:
        """Accepted, no close sent or received, and the socket still there."""
        connection = getattr(self._stream, "connection", None)  # set on accept
        return (
            connection is not None
            and connection.state is ConnectionState.OPEN
            and not self._stream.closed
            and not self._broken
            and self._socket.fileno() != -1
        )

    @property
    def backlogged(self) -> bool:
        """Bytes wait for the socket: :meth:`drain` writes them."""
        return bool(self._backlog)

    def write_nowait(self, frames: bytes) -> bool:
        """Write whole frames now, as far as the socket takes them; the rest waits in the backlog.

        True when nothing waits for :meth:`drain`. Frames are dropped once the
        websocket is no longer :attr:`open`. (The fan-out's hot path: one call
        per connection and round, so the checks of :attr:`open` are inlined.)
        """
        fd = self._socket.fileno()
        stream = self._stream
        connection = getattr(stream, "connection", None)
        if (
            fd == -1
            or self._broken
            or stream.closed
            or connection is None
            or connection.state is not ConnectionState.OPEN
        ):
            return not self._backlog
        if self._backlog or self._server.send_lock.locked():
            self._backlog += frames  # behind what is already on its way
            return False
        try:
            sent = os.write(fd, frames)
        except BlockingIOError:
            sent = 0
        except OSError:  # reset or shut: hypercorn's reader sees it too and ends the stream
            self._broken = True
            return True
        if sent == len(frames):
            return True
        self._backlog += memoryview(frames)[sent:]
        return False

    async def drain(self) -> None:
        """Wait until the backlog is written, or the connection is gone (the backlog is dropped)."""
        async with self._server.send_lock:
            await self._drain_locked()

    async def send(self, data: bytes) -> None:
        """hypercorn's bytes on this connection: behind the backlog, shielded as hypercorn's are."""
        async with self._server.send_lock:
            self._backlog += data
            with trio.CancelScope(shield=True):
                await self._drain_locked()
        if self._broken or self._socket.fileno() == -1:
            await self._server.protocol.handle(Closed())  # what hypercorn does on a failed send

    async def _drain_locked(self) -> None:
        while self._backlog:
            if self._broken or self._socket.fileno() == -1:
                self._backlog.clear()
                return
            sent = self._write(self._backlog)
            del self._backlog[:sent]
            if self._backlog:
                try:
                    await trio.lowlevel.wait_writable(self._socket)
                except trio.ClosedResourceError:  # closed by hypercorn meanwhile
                    self._backlog.clear()

    def _write(self, data: bytearray) -> int:
        try:
            return os.write(self._socket.fileno(), data)
        except BlockingIOError:
            return 0
        except OSError:  # reset, shut or closed: nothing more goes out
            self._broken = True
            return 0


# The connection whose task (or an app task it spawned) is running.
_connection: contextvars.ContextVar[tcp_server.TCPServer] = contextvars.ContextVar(
    "eventd_hypercorn_connection"
)


def claim_raw_websocket() -> RawWebsocket | None:
    """The websocket this request is opening, for :class:`RawWebsocket` writes.

    Call it in a websocket view, before or after accepting. None when the
    websocket cannot be written raw (HTTP/2). Messages the client sends on a
    claimed websocket are dropped unread: the app never waits for them, and
    hypercorn never waits for the app to take them. The end of the stream
    (the ASGI ``websocket.disconnect``) is told to :attr:`RawWebsocket.on_gone`.
    """
    server = _connection.get(None)
    if server is None or not isinstance(server.stream, trio.SocketStream):
        return None
    protocol = server.protocol.protocol
    if not isinstance(protocol, H11Protocol):
        return None
    stream = protocol.stream
    if not isinstance(stream, ws_stream.WSStream) or stream.app_put is None:
        return None
    raw = RawWebsocket(server, stream)
    server.__dict__["_eventd_raw"] = raw
    put = stream.app_put

    async def put_all_but_messages(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.receive":
            return
        if message["type"] == "websocket.disconnect" and raw.on_gone is not None:
            raw.on_gone()
        await put(message)

    stream.app_put = put_all_but_messages
    return raw


# ---------------------------------------------------------------------------
# One write per response, one keep-alive task per connection


async def _stream_send(protocol: H11Protocol, event: Any) -> None:
    """hypercorn's H11Protocol.stream_send, writing a response in one piece.

    hypercorn writes a response's head, its body and its end each on its own
    (three trips through the send lock and the socket), the end even when it
    adds no bytes, as with every Content-Length body. Here the head waits for
    the first body bytes, or the end, and goes out with them; an end with no
    bytes of its own is not written. A streamed body still goes out chunk by
    chunk, as it comes.
    """
    if isinstance(event, Response) and event.status_code >= 200:
        headers = [*event.headers, *protocol.config.response_headers("h11")]
        if protocol.keep_alive_requests >= protocol.config.keep_alive_max_requests:
            headers.append((b"connection", b"close"))
        protocol.__dict__["_eventd_head"] = _h11_bytes(
            protocol, h11.Response(headers=headers, status_code=event.status_code)
        )
    elif isinstance(event, Body | EndBody):
        head = protocol.__dict__.pop("_eventd_head", b"")
        data = _h11_bytes(
            protocol, h11.Data(data=event.data) if isinstance(event, Body) else h11.EndOfMessage()
        )
        if head or data:
            await protocol.send(RawData(data=head + data))
    else:
        await _hypercorn_stream_send(protocol, event)


def _h11_bytes(protocol: H11Protocol, event: Any) -> bytes:
    """What h11 says ``event`` is on the wire; nothing once the peer broke the protocol."""
    try:
        data: bytes = protocol.connection.send(event) or b""
    except h11.LocalProtocolError:
        if protocol.connection.their_state != h11.ERROR:
            raise
        return b""
    return data


class KeepAliveTimer:
    """hypercorn's keep-alive timeout for one connection, with one task for its life.

    hypercorn stops its idle task as each request starts and spawns a new one
    as it ends: a cancellation and a spawn per request. This keeps one waiting
    task and moves its deadline: :meth:`stop` (a request is in hand) puts it
    off for ever, :meth:`restart` (idle again) sets it ``keep_alive_timeout``
    from now. Same ends as hypercorn's: an idle connection is closed at its
    deadline, or at once when the server terminates; a busy one is left to
    hypercorn, which closes it after its answer once the server terminates.
    """

    def __init__(self, server: tcp_server.TCPServer) -> None:
        self._server = server
        self._scope: trio.CancelScope | None = None
        self._deadline = math.inf
        self._ended = False

    async def restart(self, task_group: Any, action: Any) -> None:
        self._deadline = trio.current_time() + self._server.config.keep_alive_timeout
        if self._scope is None:
            self._scope = trio.CancelScope(deadline=self._deadline)
            task_group._nursery.start_soon(self._watch)
        else:
            self._scope.deadline = self._deadline

    async def stop(self) -> None:
        self._deadline = math.inf
        if self._scope is not None:
            self._scope.deadline = math.inf

    def end(self) -> None:
        """The connection has stopped reading (its peer left): hypercorn closes it; stop waiting."""
        self._ended = True
        if self._scope is not None:
            self._scope.cancel()

    async def _watch(self) -> None:
        server = self._server
        while True:
            assert self._scope is not None
            with self._scope:
                await server.context.terminated.wait()
            if self._ended:
                return
            idle = self._deadline != math.inf
            if server.context.terminated.is_set():
                if not idle:
                    return
                break
            if idle and trio.current_time() >= self._deadline:
                break
            # The deadline passed as a request came in: wait for the next one.
            self._scope = trio.CancelScope(deadline=self._deadline)
        with trio.CancelScope(shield=True):
            await server._initiate_server_close()


# ---------------------------------------------------------------------------
# Patches


def _check_hypercorn() -> None:
    version = importlib.metadata.version("hypercorn")
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    if major_minor not in TESTED_HYPERCORN:
        raise RuntimeError(
            f"hypercorn {version} is installed, but eventd/http/server.py reaches into the "
            f"internals of hypercorn {', '.join('.'.join(map(str, v)) for v in TESTED_HYPERCORN)} "
            "only; check its patches against this release before allowing it"
        )
    for owner, name in (
        (tcp_server.TCPServer, "run"),
        (tcp_server.TCPServer, "protocol_send"),
        (tcp_server.TCPServer, "_read_data"),
        (tcp_server.TCPServer, "__init__"),
        (tcp_server.TCPServer, "_initiate_server_close"),
        (task_group.TaskGroup, "spawn_app"),
        (H11Protocol, "stream_send"),
        (ws_stream.WSStream, "handle"),
    ):
        if not callable(getattr(owner, name, None)):
            raise RuntimeError(f"hypercorn {version} has no {owner.__name__}.{name}")
    if not isinstance(getattr(tcp_server, "MAX_RECV", None), int):
        raise RuntimeError(f"hypercorn {version} has no tcp_server.MAX_RECV")


_check_hypercorn()

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
    _connection.set(server)  # for claim_raw_websocket, in the app task spawned from here
    try:
        await _hypercorn_run(server)
    except Exception:
        log.exception("hypercorn failed on one connection; that connection was closed")


_hypercorn_protocol_send = tcp_server.TCPServer.protocol_send


async def _protocol_send(server: tcp_server.TCPServer, event: Any) -> None:
    # On a claimed websocket, hypercorn's bytes queue behind the raw ones.
    raw: RawWebsocket | None = server.__dict__.get("_eventd_raw")
    if raw is not None and isinstance(event, RawData):
        await raw.send(event.data)
    else:
        await _hypercorn_protocol_send(server, event)


_hypercorn_spawn_app = task_group.TaskGroup.spawn_app


async def _spawn_app(group: task_group.TaskGroup, *args: Any) -> Callable[[Any], Awaitable[None]]:
    """hypercorn's TaskGroup.spawn_app, its ``app_put`` waiting only when the app's queue is full.

    hypercorn hands each message of a request to the app through a memory
    channel's ``send``, which yields to the scheduler even when there is room:
    a POST's body and its end went in on two separate turns of the read loop,
    and the app often woke between them to wait for the end. Here a message
    that fits is queued at once, so the app finds the whole body waiting; the
    queue's bound (``max_app_queue_size``) still holds the reader back.
    """
    send = await _hypercorn_spawn_app(group, *args)
    channel = getattr(send, "__self__", None)  # hypercorn returns the channel's bound send
    if not isinstance(channel, trio.MemorySendChannel):
        return send

    async def put(message: Any) -> None:
        try:
            channel.send_nowait(message)
        except trio.WouldBlock:
            await channel.send(message)

    return put


_hypercorn_read_data = tcp_server.TCPServer._read_data
_hypercorn_stream_send = H11Protocol.stream_send
_hypercorn_init = tcp_server.TCPServer.__init__


def _init(server: tcp_server.TCPServer, *args: Any, **kwargs: Any) -> None:
    _hypercorn_init(server, *args, **kwargs)
    server.idle_task = KeepAliveTimer(server)  # type: ignore[assignment]


async def _read_data(server: tcp_server.TCPServer) -> None:
    # hypercorn's read loop, waiting with one wait_readable and one CancelScope.
    # An idle connection waits here for as long as it is open, and trio's
    # receive_some under fail_after holds some 5 KB of frames and context
    # managers per wait; this holds about 2 KB less, for every idle websocket.
    # Same ends: EOF, a reset or a closed socket, the read timeout.
    stream = server.stream
    if not isinstance(stream, trio.SocketStream):
        await _hypercorn_read_data(server)
        return
    sock = stream.socket
    read_timeout = server.config.read_timeout or math.inf
    while True:
        with trio.move_on_after(read_timeout) as waiting:
            try:
                await trio.lowlevel.wait_readable(sock)
            except (trio.ClosedResourceError, OSError):  # closed by hypercorn meanwhile
                break
        if waiting.cancelled_caught:
            break
        try:
            data = os.read(sock.fileno(), tcp_server.MAX_RECV)
        except BlockingIOError:
            continue
        except OSError:  # reset, or closed
            break
        await server.protocol.handle(RawData(data))
        if not data:
            break
    await server.protocol.handle(Closed())
    if isinstance(server.idle_task, KeepAliveTimer):
        server.idle_task.end()


ws_stream.WSStream.handle = _handle  # type: ignore[method-assign,assignment]
H11Protocol.stream_send = _stream_send  # type: ignore[method-assign,assignment]
tcp_server.TCPServer.__init__ = _init  # type: ignore[method-assign,assignment]
tcp_server.TCPServer._read_data = _read_data  # type: ignore[method-assign,assignment]
tcp_server.TCPServer.run = _run_contained  # type: ignore[method-assign,assignment]
tcp_server.TCPServer.protocol_send = _protocol_send  # type: ignore[method-assign,assignment]
task_group.TaskGroup.spawn_app = _spawn_app  # type: ignore[method-assign,assignment]
