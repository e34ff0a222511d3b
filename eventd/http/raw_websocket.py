"""eventd's connection server: its one deliberate seam in hypercorn.

**The raw websocket write path.** A change that a thousand clients follow is
framed once (server frames are unmasked, so the bytes are the same for every
client) and written to each socket with one non-blocking ``write`` — no task
switch, no ASGI message and no wsproto framing per connection. That is what
let one daemon feed a thousand subscribers of one event with every update
(p99 273 → 66 ms against hypercorn's own send path, ``bench.ws_fanout``).

**Fewer trips through the scheduler per request.** hypercorn's connection
yields to trio's scheduler several times a request where it need not: it
writes a response's head, body and (empty) end each under the send lock; it
spawns and cancels an idle task per request, waiting for the spawn; and it
hands the request to the app through a channel's ``send``, which yields even
when the channel has room. With 200 connections each yield lets the other
connections' work in between and cools the caches, so every line of a
request costs more: without these three, a read cost the daemon 2.1× the CPU
and a registration 1.3× (``bench.ab``, figures in ``bench/RESULTS.md``). Here
a response goes out in one write (:meth:`_H11Protocol.stream_send`), one
task keeps a connection's idle time (:class:`_KeepAlive`), and the app's
queue takes a message at once when it has room (:class:`_TaskGroup`).

**What clients may send.** A new connection's first request head is due
within ``server.header_timeout_seconds``. HTTP/1.1 is the only protocol:
cleartext HTTP/2 is not offered (:class:`_HTTP11Only` says why). On a
websocket, a message over ``websocket.max_message_bytes`` is closed with 1009
as its frame header comes, and a violation of RFC 6455 with the code it
prescribes (1002, 1007), each logged in one line
(:meth:`RawWebsocketTCPServer.receive_websocket_data`).

hypercorn has no API for these, so this module uses its internals, and it is
the only one that does. What it touches:

* :class:`RawWebsocketTCPServer` subclasses ``hypercorn.trio.tcp_server.TCPServer``
  (eventd's serve loop, :func:`eventd.http.server.serve`, constructs it in
  place of hypercorn's). ``run`` is hypercorn's for a plain TCP stream,
  noting the connection for :func:`claim_raw_websocket`, serving it with
  :class:`_HTTP11Only` (a ``ProtocolWrapper`` holding an ``H11Protocol``
  subclass whose ``_check_protocol`` never switches to HTTP/2 and whose
  ``stream_send`` holds a response's head for its body, reading
  ``connection`` (h11's), ``config`` and ``keep_alive_requests`` as
  hypercorn's does), in a ``TaskGroup`` subclass whose ``spawn_app`` wraps
  hypercorn's (whose result is its channel's bound ``send``), and timing
  the first request head and every idle spell with a :class:`_KeepAlive`
  (spawned with the task group's ``spawn``, closing with
  ``_initiate_server_close``) in place of hypercorn's ``idle_task``.
  ``protocol_send`` takes the ``Updated`` events that drive hypercorn's
  ``idle_task``, and puts hypercorn's own bytes on a claimed connection (the
  101 response, pongs, the close frame) behind the raw backlog, so that
  frames never interleave.
* Of the server it reads ``stream`` (its socket is written directly),
  ``send_lock`` (held for every write, as hypercorn holds it) and
  ``protocol`` (told ``Closed`` when a write fails, as hypercorn does; its
  ``protocol`` is the HTTP/1.1 ``H11Protocol``, whose ``stream`` is the
  ``WSStream``).
* Of the ``WSStream``: ``connection`` (wsproto's: fed what the client sends,
  read for its state: nothing is written after a close), ``buffer``,
  ``send``, ``stream_id``, ``client``, ``closed``, and ``app_put``, which is
  replaced on that one instance so that the client's messages are dropped
  instead of queued for an app that never reads them (a full queue would
  stop hypercorn's reader, and with it pongs and the close handshake).
* One assignment onto a hypercorn class: ``WSStream.handle`` (:func:`_handle`)
  drops what a client sends before its handshake is answered, and on
  eventd's connections reads what it sends after. It is an assignment
  because hypercorn's HTTP/1.1 protocol constructs ``WSStream`` by name.

:func:`_check_hypercorn` refuses, at import, a hypercorn lacking any of these,
naming what is missing; ``tests/test_raw_websocket.py`` drives the server over
real sockets against the installed hypercorn.
"""

from __future__ import annotations

import contextvars
import dataclasses
import importlib.metadata
import inspect
import logging
import math
import os
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol import ProtocolWrapper, ws_stream
from hypercorn.protocol.events import Body, Data, EndBody, Request, Response, StreamClosed
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio import tcp_server
from hypercorn.trio.task_group import TaskGroup
from hypercorn.typing import (
    AppWrapper,
    ASGIReceiveEvent,
    ASGISendEvent,
    H11SendableEvent,
    LifespanState,
    Scope,
    WorkerContext,
)
from hypercorn.typing import ConnectionState as HTTPConnectionState
from hypercorn.utils import parse_socket_addr
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Message, Ping
from wsproto.events import Event as WSProtoEvent
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

from eventd.http.websocket_input import MessageSizeGuard

log = logging.getLogger(__name__)


class RawWebsocket:
    """One HTTP/1.1 websocket's socket, written past hypercorn, quart and wsproto.

    The app frames a message once and hands the bytes here, where they are
    written with one non-blocking ``write``. What the socket cannot take now
    waits in a backlog until :meth:`drain`.

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


class RawWebsocketTCPServer(tcp_server.TCPServer):
    """hypercorn's server of one TCP connection, as eventd serves it (see the module docstring).

    HTTP/1.1 alone; a new connection's first request head is due within
    ``header_timeout_seconds``; the websocket, if the request opens one, can
    be claimed for raw writes, and what its client sends is read within
    hypercorn's ``websocket_max_message_size``, violations closed with their code.
    """

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        state: LifespanState,
        stream: trio.SocketStream,
        *,
        header_timeout_seconds: float = math.inf,
    ) -> None:
        super().__init__(app, config, context, state, stream)  # type: ignore[arg-type]  # no TLS
        self.header_timeout_seconds = header_timeout_seconds
        self.raw_websocket: RawWebsocket | None = None  # set by claim_raw_websocket
        self._message_guard: MessageSizeGuard | None = None  # set at the websocket's first bytes
        self._keep_alive = _KeepAlive(self)

    async def run(self) -> None:
        """hypercorn's ``TCPServer.run`` for a plain TCP connection, but for four things.

        The connection is noted for :func:`claim_raw_websocket`; it is served
        by HTTP/1.1 alone (:class:`_HTTP11Only`), with its responses written
        in one piece (:meth:`_H11Protocol.stream_send`) and its requests
        handed to the app without a yield (:class:`_TaskGroup`); its idle
        time is kept by a :class:`_KeepAlive` of its own; and its first
        request head is due within the header timeout (hypercorn waits the
        keep-alive timeout for it; a client trickling its headers would hold
        the connection that long). Once the client has gone, the connection
        ends: hypercorn's keeps its task until the keep-alive timer runs out.
        """
        _connection.set(self)  # seen by the app's task, which is spawned from this one
        sock = self.stream.socket
        try:
            client = parse_socket_addr(sock.family, sock.getpeername())
            server = parse_socket_addr(sock.family, sock.getsockname())
            async with _TaskGroup() as task_group:
                self._task_group = task_group
                self.protocol = _HTTP11Only(
                    _H11Protocol(
                        self.app,
                        self.config,
                        self.context,
                        task_group,
                        HTTPConnectionState(self.state),
                        False,
                        client,
                        server,
                        self.protocol_send,
                    )
                )
                await self.protocol.initiate()
                self._keep_alive.idle(
                    min(self.header_timeout_seconds, self.config.keep_alive_timeout)
                )
                task_group.spawn(self._keep_alive.watch)
                await self._read_data()
                self._keep_alive.end()
        except OSError:
            pass
        finally:
            await self._close()

    async def protocol_send(self, event: Event) -> None:
        raw = self.raw_websocket
        if isinstance(event, RawData):
            if raw is not None:
                await raw.send(event.data)  # behind the raw backlog
            else:
                await super().protocol_send(event)
        elif isinstance(event, Updated):  # hypercorn restarts or stops its idle task here
            if event.idle:
                self._keep_alive.idle(self.config.keep_alive_timeout)
            else:
                self._keep_alive.busy()
        else:
            await super().protocol_send(event)

    def websocket_requested(self) -> None:
        """This connection's request is for a websocket: it will never be idle again.

        hypercorn never recycles such a connection (accepted or refused, it
        ends with its stream), so no task need wait for its keep-alive: each
        idle websocket holds a task less.
        """
        self._keep_alive.end()

    async def receive_websocket_data(self, stream: ws_stream.WSStream, data: bytes) -> None:
        """What the client sent on its websocket: hypercorn's reading, within the limits.

        hypercorn's ``WSStream`` hands wsproto whatever arrives, holds a
        message until it is whole or over ``websocket_max_message_size``, and
        ends the connection without a word (no close frame) when wsproto
        finds a violation. Here the frame headers are read ahead
        (:class:`~eventd.http.websocket_input.MessageSizeGuard`): a message
        over the size is closed with 1009 as its header comes, before any of
        its payload is read. A violation wsproto finds (an unmasked frame, a
        reserved opcode or bit, a text that is no UTF-8, bytes that are no
        frame) is closed with the code wsproto gives it, RFC 6455's: 1002 or
        1007. Either is logged in one line.
        """
        guard = self._message_guard
        if guard is None:
            guard = self._message_guard = MessageSizeGuard(self.config.websocket_max_message_size)
        end = guard.end_of_oversized_header(data)
        connection = stream.connection
        connection.receive_data(data if end is None else data[:end])
        for event in connection.events():
            if isinstance(event, Message):
                stream.buffer.extend(event)  # within the size: the guard has seen its headers
                if event.message_finished:
                    assert stream.app_put is not None  # set before the handshake was accepted
                    await stream.app_put(stream.buffer.to_message())
                    stream.buffer.clear()
            elif isinstance(event, Ping):
                await _send_frame(stream, event.response())
            elif isinstance(event, CloseConnection):
                if connection.state is ConnectionState.REMOTE_CLOSING:  # the client's close
                    await _send_frame(stream, event.response())
                elif connection.state is not ConnectionState.CLOSED:  # not the answer to ours
                    await _fail(stream, event.code, event.reason or "protocol error")
                await stream.send(StreamClosed(stream_id=stream.stream_id))
                return
        if end is not None:
            await _fail(
                stream,
                CloseReason.MESSAGE_TOO_BIG,
                f"a message over {guard.max_message_bytes} bytes",
            )
            await stream.send(StreamClosed(stream_id=stream.stream_id))


class _KeepAlive:
    """hypercorn's idle timeout of one connection, kept by one task for the connection's life.

    hypercorn stops its idle task as each request comes and starts a new one
    (``nursery.start``, waited for) as each answer has gone: a cancellation, a
    spawn and two waits per request. Here one task waits, and a request moves
    its deadline: :meth:`busy` puts it off for ever, :meth:`idle` sets it so
    many seconds from now. The ends are hypercorn's: an idle connection is
    closed at its deadline, or at once when the server stops; a busy one is
    left to hypercorn, which closes it after its answer once the server stops.
    """

    __slots__ = ("_server", "_scope", "_deadline", "_ended")

    def __init__(self, server: tcp_server.TCPServer) -> None:
        self._server = server
        self._scope: trio.CancelScope | None = None
        self._deadline = math.inf
        self._ended = False

    def idle(self, seconds: float) -> None:
        self._move(trio.current_time() + seconds)

    def busy(self) -> None:
        self._move(math.inf)

    def end(self) -> None:
        """No idle spell is ahead: the client has gone, or asked for a websocket. Stop waiting."""
        self._ended = True
        if self._scope is not None:
            self._scope.cancel()

    def _move(self, deadline: float) -> None:
        self._deadline = deadline
        if self._scope is not None:
            self._scope.deadline = deadline

    async def watch(self) -> None:
        server = self._server
        terminated = server.context.terminated
        while not self._ended:
            with trio.CancelScope(deadline=self._deadline) as self._scope:
                await terminated.wait()
            self._scope = None
            if self._ended:
                return
            idle = self._deadline != math.inf
            if terminated.is_set():
                if not idle:
                    return  # hypercorn closes it after its answer
                break
            if idle and trio.current_time() >= self._deadline:
                break
            # The deadline passed as a request came in: wait out that request.
        else:
            return
        with trio.CancelScope(shield=True):
            await server._initiate_server_close()


class _TaskGroup(TaskGroup):
    """hypercorn's task group of one connection, whose app queue takes a message without a yield.

    hypercorn hands each message of a request (its body, its end) to the app
    through a memory channel's ``send``, which yields to the scheduler even
    when there is room. Here a message that fits is queued at once, so the
    app finds the whole request waiting; a full queue
    (``max_app_queue_size``) still holds the reader back.
    """

    async def spawn_app(
        self,
        app: AppWrapper,
        config: Config,
        scope: Scope,
        send: Callable[[ASGISendEvent | None], Awaitable[None]],
    ) -> Callable[[ASGIReceiveEvent], Awaitable[None]]:
        put = await super().spawn_app(app, config, scope, send)
        channel = getattr(put, "__self__", None)  # hypercorn hands out its channel's send
        if not isinstance(channel, trio.MemorySendChannel):
            return put

        async def put_at_once(message: ASGIReceiveEvent) -> None:
            try:
                channel.send_nowait(message)
            except trio.WouldBlock:
                await channel.send(message)

        return put_at_once


async def _send_frame(stream: ws_stream.WSStream, event: WSProtoEvent) -> None:
    """hypercorn's ``WSStream._send_wsproto_event``: nothing once wsproto's state forbids it."""
    try:
        data = stream.connection.send(event)
    except LocalProtocolError:  # a close has gone out already
        return
    await stream.send(Data(stream_id=stream.stream_id, data=data))


async def _fail(stream: ws_stream.WSStream, code: int, reason: str) -> None:
    """Close the websocket with ``code`` for what its client sent; the caller ends the stream."""
    client = f"{stream.client[0]}:{stream.client[1]}" if stream.client else "a client"
    log.warning("closing the websocket of %s with %d: %s", client, code, reason)
    await _send_frame(stream, CloseConnection(code=code, reason=reason))


class _H11Protocol(H11Protocol):
    """hypercorn's HTTP/1.1, writing a response in one piece, never switching to HTTP/2.

    (For the second, see :class:`_HTTP11Only`.)
    """

    _head = b""  # a response's head, held for its first body bytes

    async def stream_send(self, event: StreamEvent) -> None:
        """hypercorn's ``stream_send``, but a response's head waits for its body.

        hypercorn writes a response's head, its body and its end each on its
        own: three trips through the send lock and the socket, the end even
        when it adds no bytes, as with every ``Content-Length`` body. Here the
        head waits for the first body bytes, or the end, and goes out with
        them; an end with no bytes of its own is not written. A streamed body
        still goes out chunk by chunk, as it comes.
        """
        if isinstance(event, Response) and event.status_code >= 200:
            headers = [*event.headers, *self.config.response_headers("h11")]
            if self.keep_alive_requests >= self.config.keep_alive_max_requests:
                headers.append((b"connection", b"close"))
            self._head = self._h11_bytes(
                h11.Response(headers=headers, status_code=event.status_code)
            )
        elif isinstance(event, Body | EndBody):
            head, self._head = self._head, b""
            data = head + self._h11_bytes(
                h11.Data(data=event.data) if isinstance(event, Body) else h11.EndOfMessage()
            )
            if data:
                await self.send(RawData(data=data))
        else:
            if self._head:  # a head with no body or end (the stream closed early)
                head, self._head = self._head, b""
                await self.send(RawData(data=head))
            await super().stream_send(event)

    def _h11_bytes(self, event: H11SendableEvent) -> bytes:
        """h11's bytes for ``event`` (hypercorn's ``_send_h11_event``, unsent)."""
        try:
            return self.connection.send(event) or b""
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return b""  # the client broke the protocol: nothing more goes out

    async def _check_protocol(self, event: h11.Request) -> None:
        # An `Upgrade: h2c` is ignored and the request served over HTTP/1.1,
        # as a server may do with an upgrade it does not offer (RFC 9110 §7.8).
        # The prior-knowledge preface, which h11 reads as a request, is refused.
        if event.method == b"PRI" and event.target == b"*" and event.http_version == b"2.0":
            raise _HTTP2Preface


class _HTTP2Preface(Exception):
    """A client began the connection with HTTP/2's preface."""


# The HTTP/2 server preface (an empty SETTINGS frame, RFC 9113 §3.4), then
# GOAWAY (§6.8) with HTTP_1_1_REQUIRED (0xd): HTTP/2's own "use HTTP/1.1".
_SETTINGS, _GOAWAY, _HTTP_1_1_REQUIRED = 0x4, 0x7, 0xD
_REFUSE_HTTP2 = (
    struct.pack("!IBI", 0 << 8 | _SETTINGS, 0, 0)
    + struct.pack("!IBIII", 8 << 8 | _GOAWAY, 0, 0, 0, _HTTP_1_1_REQUIRED)
)


class _HTTP11Only(ProtocolWrapper):
    """hypercorn's protocol of a connection, with HTTP/1.1 the only one.

    hypercorn switches a connection to HTTP/2 when a cleartext client asks
    (h2c: an ``Upgrade`` or the prior-knowledge preface). eventd does not
    offer cleartext HTTP/2: its streams are written to an HTTP/1.1
    connection's socket (HTTP/2 has no such socket to give), browsers speak
    HTTP/2 only over TLS, which a proxy in front ends, and hypercorn's h2c
    drops a connection with a ``KeyError`` where a request body is refused
    early (a 413) while the client still sends it. A client that opens with
    the HTTP/2 preface is answered in HTTP/2 that HTTP/1.1 is required.
    """

    def __init__(self, protocol: _H11Protocol) -> None:  # hypercorn's picks HTTP/2 too
        self.protocol = protocol
        self.send = protocol.send

    async def handle(self, event: Event) -> None:
        try:
            await self.protocol.handle(event)
        except _HTTP2Preface:
            await self.send(RawData(data=_REFUSE_HTTP2))
            await self.send(Closed())


# The connection whose task (or an app task it spawned) is running.
_connection: contextvars.ContextVar[RawWebsocketTCPServer] = contextvars.ContextVar(
    "eventd_raw_websocket_connection"
)


def claim_raw_websocket() -> RawWebsocket | None:
    """The websocket this request is opening, for :class:`RawWebsocket` writes.

    Call it in a websocket view, before or after accepting. None when the
    websocket cannot be written raw: served by a server other than
    :class:`RawWebsocketTCPServer` (which serves HTTP/1.1 alone). Messages
    the client sends on a claimed websocket are dropped unread: the app never
    waits for them, and hypercorn never waits for the app to take them. The
    end of the stream (the ASGI ``websocket.disconnect``) is told to
    :attr:`RawWebsocket.on_gone`.
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
    server.raw_websocket = raw
    put = stream.app_put

    async def put_all_but_messages(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.receive":
            return
        if message["type"] == "websocket.disconnect" and raw.on_gone is not None:
            raw.on_gone()
        await put(message)

    stream.app_put = put_all_but_messages
    return raw


# What the seam calls of hypercorn's classes, and the attributes it reads of
# their instances with the method of hypercorn's that sets each. Instance
# attributes are not on the class, so the check looks for the name among
# those the setting method uses.
_METHODS = (
    (tcp_server.TCPServer, "protocol_send"),
    (tcp_server.TCPServer, "_read_data"),
    (tcp_server.TCPServer, "_close"),
    (tcp_server.TCPServer, "_initiate_server_close"),
    (ProtocolWrapper, "initiate"),
    (H11Protocol, "handle"),
    (H11Protocol, "_check_protocol"),
    (H11Protocol, "stream_send"),
    (TaskGroup, "spawn_app"),
    (TaskGroup, "spawn"),
    (ws_stream.WSStream, "handle"),
    (ws_stream.WebsocketBuffer, "extend"),
    (ws_stream.WebsocketBuffer, "to_message"),
    (ws_stream.WebsocketBuffer, "clear"),
)
_ATTRIBUTES = (
    (
        tcp_server.TCPServer,
        "__init__",
        ("app", "config", "context", "state", "stream", "send_lock"),
    ),
    (tcp_server.TCPServer, "run", ("protocol", "_task_group")),
    (tcp_server.TCPServer, "protocol_send", ("Updated", "idle_task")),
    (ProtocolWrapper, "__init__", ("protocol",)),
    (H11Protocol, "__init__", ("send", "config", "connection", "keep_alive_requests")),
    (H11Protocol, "_create_stream", ("stream",)),
    (H11Protocol, "_handle_events", ("_check_protocol",)),
    (
        ws_stream.WSStream,
        "__init__",
        ("app_put", "buffer", "client", "closed", "send", "stream_id"),
    ),
    (ws_stream.WSStream, "_accept", ("connection",)),
    (ws_stream.WSStream, "handle", ("handshake",)),
    (ws_stream.Handshake, "__init__", ("accepted",)),
)
# The parameters of hypercorn's that eventd's server calls, by name: its constructors, and
# spawn_app, which _TaskGroup wraps.
_SIGNATURES: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (tcp_server.TCPServer, ("app", "config", "context", "state", "stream")),
    (
        H11Protocol,
        ("app", "config", "context", "task_group", "connection_state", "ssl", "client",
         "server", "send"),
    ),
    (TaskGroup.spawn_app, ("self", "app", "config", "scope", "send")),
)


def _check_hypercorn() -> None:
    version = importlib.metadata.version("hypercorn")
    missing = [
        f"{owner.__name__}.{name}()" for owner, name in _METHODS
        if not callable(getattr(owner, name, None))
    ]
    for owner, method, attributes in _ATTRIBUTES:
        code = getattr(getattr(owner, method, None), "__code__", None)
        names = code.co_names if code is not None else ()
        missing += [
            f"{owner.__name__}.{attribute} (set by {method})"
            for attribute in attributes
            if attribute not in names
        ]
    for owner, parameters in _SIGNATURES:
        if tuple(inspect.signature(owner).parameters) != parameters:
            missing.append(f"{owner.__qualname__}({', '.join(parameters)})")
    if missing:
        raise RuntimeError(
            f"hypercorn {version} lacks what eventd/http/raw_websocket.py uses of it: "
            f"{', '.join(missing)}; adapt eventd's connection server to this release"
        )


_check_hypercorn()


_hypercorn_ws_handle = ws_stream.WSStream.handle


async def _handle(stream: ws_stream.WSStream, event: StreamEvent) -> None:
    """hypercorn's ``WSStream.handle``, and on eventd's connections, eventd's reading.

    For every connection, what arrives before the handshake is answered is
    dropped. A client must wait for that answer before it sends anything
    (RFC 6455 §4.1). hypercorn answers such bytes (a body on the handshake
    request, say) with a 400 of its own, which races the app's answer: once
    the app has begun to refuse the handshake, h11 refuses the second
    response with an error in the connection's task. Dropped, they leave the
    app's answer the only one.

    On a connection :class:`RawWebsocketTCPServer` serves, the client's
    offer of permessage-deflate is not taken up (the request's
    ``Sec-WebSocket-Extensions`` is left out): a compressed message's size
    is not in its header, and eventd's clients have nothing to compress;
    the connection's keep-alive task ends
    (:meth:`RawWebsocketTCPServer.websocket_requested`). What the client
    sends is read by :meth:`RawWebsocketTCPServer.receive_websocket_data`.
    """
    if isinstance(event, Body | Data) and not stream.handshake.accepted:
        return
    server = _connection.get(None)
    if server is not None:
        if isinstance(event, Request):
            server.websocket_requested()
            headers = [(k, v) for k, v in event.headers if k.lower() != b"sec-websocket-extensions"]
            event = dataclasses.replace(event, headers=headers)
        elif isinstance(event, Data) and not stream.closed:
            await server.receive_websocket_data(stream, event.data)
            return
    await _hypercorn_ws_handle(stream, event)


# The one assignment onto a hypercorn class: hypercorn's HTTP/1.1 protocol
# constructs WSStream by name, so a subclass would never be used.
ws_stream.WSStream.handle = _handle  # type: ignore[method-assign,assignment]
