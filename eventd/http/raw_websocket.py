"""The raw websocket write path: eventd's one deliberate seam in hypercorn.

A change that a thousand clients follow is framed once (server frames are
unmasked, so the bytes are the same for every client) and written to each
socket with one non-blocking ``write`` — no task switch, no ASGI message and
no wsproto framing per connection. That is what let one daemon feed a
thousand subscribers of one event with every update (p99 273 → 66 ms against
hypercorn's own send path, ``bench.ws_fanout``).

hypercorn has no API for this, so this module uses its internals, and it is
the only one that does. What it touches:

* :class:`RawWebsocketTCPServer` subclasses ``hypercorn.trio.tcp_server.TCPServer``
  (eventd's serve loop, :func:`eventd.http.server.serve`, constructs it in
  place of hypercorn's): ``run`` is extended to note the connection for
  :func:`claim_raw_websocket`; ``protocol_send`` is extended to put
  hypercorn's own bytes on a claimed connection (the 101 response, pongs, the
  close frame) behind the raw backlog, so that frames never interleave.
* Of the server it reads ``stream`` (its socket is written directly),
  ``send_lock`` (held for every write, as hypercorn holds it) and
  ``protocol`` (told ``Closed`` when a write fails, as hypercorn does; its
  ``protocol`` is the HTTP/1.1 ``H11Protocol``, whose ``stream`` is the
  ``WSStream``).
* Of the ``WSStream``: ``connection`` (wsproto's, read for its state: nothing
  is written after a close), ``closed``, and ``app_put``, which is replaced on
  that one instance so that the client's messages are dropped instead of
  queued for an app that never reads them (a full queue would stop
  hypercorn's reader, and with it pongs and the close handshake).
* One assignment onto a hypercorn class, a fix: ``WSStream.handle`` drops
  what a client sends before its handshake is answered
  (:func:`_handle_after_the_handshake`). It is here because the only way to
  reach the class is to assign onto it: hypercorn's HTTP/1.1 and HTTP/2
  protocols construct ``WSStream`` by name.

:func:`_check_hypercorn` refuses, at import, a hypercorn lacking any of these,
naming what is missing; ``tests/test_raw_websocket.py`` drives the path over
real sockets against the installed hypercorn.
"""

from __future__ import annotations

import contextvars
import importlib.metadata
import os
from collections.abc import Callable
from typing import Any

import trio
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol import ProtocolWrapper, ws_stream
from hypercorn.protocol.events import Body, Data
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio import tcp_server
from wsproto.connection import ConnectionState


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
    """hypercorn's server of one TCP connection, whose websocket can be claimed for raw writes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raw_websocket: RawWebsocket | None = None  # set by claim_raw_websocket

    async def run(self) -> None:
        _connection.set(self)  # seen by the app's task, which is spawned from this one
        await super().run()

    async def protocol_send(self, event: Event) -> None:
        raw = self.raw_websocket
        if raw is not None and isinstance(event, RawData):
            await raw.send(event.data)  # behind the raw backlog
        else:
            await super().protocol_send(event)


# The connection whose task (or an app task it spawned) is running.
_connection: contextvars.ContextVar[RawWebsocketTCPServer] = contextvars.ContextVar(
    "eventd_raw_websocket_connection"
)


def claim_raw_websocket() -> RawWebsocket | None:
    """The websocket this request is opening, for :class:`RawWebsocket` writes.

    Call it in a websocket view, before or after accepting. None when the
    websocket cannot be written raw (HTTP/2, or a server other than
    :class:`RawWebsocketTCPServer`). Messages the client sends on a claimed
    websocket are dropped unread: the app never waits for them, and hypercorn
    never waits for the app to take them. The end of the stream (the ASGI
    ``websocket.disconnect``) is told to :attr:`RawWebsocket.on_gone`.
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
    (tcp_server.TCPServer, "run"),
    (tcp_server.TCPServer, "protocol_send"),
    (ProtocolWrapper, "handle"),
    (ws_stream.WSStream, "handle"),
)
_ATTRIBUTES = (
    (tcp_server.TCPServer, "__init__", ("stream", "send_lock")),
    (tcp_server.TCPServer, "run", ("protocol",)),
    (ProtocolWrapper, "__init__", ("protocol",)),
    (H11Protocol, "_create_stream", ("stream",)),
    (ws_stream.WSStream, "__init__", ("app_put", "closed")),
    (ws_stream.WSStream, "_accept", ("connection",)),
    (ws_stream.WSStream, "handle", ("handshake",)),
    (ws_stream.Handshake, "__init__", ("accepted",)),
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
    if missing:
        raise RuntimeError(
            f"hypercorn {version} lacks what eventd/http/raw_websocket.py uses of it: "
            f"{', '.join(missing)}; adapt the raw websocket write path to this release"
        )


_check_hypercorn()


_hypercorn_ws_handle = ws_stream.WSStream.handle


async def _handle_after_the_handshake(stream: ws_stream.WSStream, event: StreamEvent) -> None:
    """hypercorn's ``WSStream.handle``, dropping what arrives before the handshake is answered.

    A client must wait for that answer before it sends anything (RFC 6455
    §4.1). hypercorn answers such bytes (a body on the handshake request,
    say) with a 400 of its own, which races the app's answer: once the app
    has begun to refuse the handshake, h11 refuses the second response with
    an error in the connection's task. Dropped, they leave the app's answer
    the only one.
    """
    if isinstance(event, Body | Data) and not stream.handshake.accepted:
        return
    await _hypercorn_ws_handle(stream, event)


ws_stream.WSStream.handle = _handle_after_the_handshake  # type: ignore[method-assign,assignment]
