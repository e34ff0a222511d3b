"""The raw websocket write path (eventd.http.raw_websocket) against the installed hypercorn.

Rules of this file: hypercorn runs in this process — eventd's serve loop on a
free loopback port — serving a small ASGI app that claims its websockets; the
client is wsproto on a plain socket, which checks every frame the server
writes. Every wait is bounded by ``trio.fail_after``. The last test starts
the real daemon, to read its log.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
import wsproto
from hypercorn.protocol import ws_stream
from hypercorn.trio import tcp_server
from trio_websocket import open_websocket_url
from wsproto.events import AcceptConnection, Ping, Pong, Request, TextMessage

from eventd.http import raw_websocket
from eventd.http.raw_websocket import RawWebsocket, claim_raw_websocket
from tests.conftest import create_event
from tests.support import (
    App,
    DaemonProcess,
    RawClient,
    RawHttp,
    Receive,
    Send,
    answer_ok,
    next_message,
    serving,
    ws_url,
)

TIMEOUT_SECONDS = 10
GOING_AWAY = 1001


def frame(n: int, padding: int = 0) -> bytes:
    """Message ``n`` as one unmasked text frame, as a server writes it."""
    text = json.dumps({"n": n, "padding": "x" * padding})
    return wsproto.Connection(wsproto.ConnectionType.SERVER).send(TextMessage(data=text))


async def open_client(port: int, *, small_buffer: bool = False) -> RawClient:
    """A websocket client, handshake done; with ``small_buffer``, one that fills up soon."""
    sock = trio.socket.socket()
    if small_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    client = RawClient(sock)
    await client.send(Request(host=f"127.0.0.1:{port}", target="/ws"))
    with trio.fail_after(TIMEOUT_SECONDS):
        while not isinstance(event := await client.next_event(), AcceptConnection):
            assert event is not None, "closed during the handshake"
    return client


def reset_on_close(client: RawClient) -> None:
    """Closing the client's socket now resets the connection instead of ending it."""
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@dataclass
class Stream:
    """A websocket view: claims its websocket, accepts, writes ``frames`` raw, waits for the end.

    With ``hold``, what the socket did not take waits in the backlog until
    ``hold`` is set, as it waits for the fan-out's next turn. ``received``
    holds the types of the ASGI messages hypercorn handed the view.
    """

    frames: list[bytes]
    hold: trio.Event | None = None
    raw: RawWebsocket | None = None
    received: list[str] = field(default_factory=list)
    gone: trio.Event = field(default_factory=trio.Event)  # RawWebsocket.on_gone was called
    ended: trio.Event = field(default_factory=trio.Event)

    async def __call__(self, receive: Receive, send: Send) -> None:
        self.raw = raw = claim_raw_websocket()
        assert raw is not None
        raw.on_gone = self.gone.set
        self.received.append((await receive())["type"])
        await send({"type": "websocket.accept"})
        for frame_ in self.frames:
            raw.write_nowait(frame_)
        if self.hold is not None:
            await self.hold.wait()
        await raw.drain()
        self.received.append((await receive())["type"])
        self.ended.set()


async def test_raw_frames_and_hypercorns_own_go_out_whole_and_in_order():
    # Far more than the socket buffers hold, written while the client reads
    # nothing, the socket left with part of a frame; the client's ping comes
    # meanwhile, and hypercorn's pong must wait behind every frame before it.
    stream = Stream([frame(n, padding=20_000) for n in range(40)], hold=trio.Event())
    async with serving(App(websocket=stream)) as served:
        client = await open_client(served.port, small_buffer=True)
        with client.sock:
            await trio.testing.wait_all_tasks_blocked()
            assert stream.raw is not None
            assert stream.raw.backlogged
            await client.send(Ping(payload=b"behind the backlog"))
            await trio.testing.wait_all_tasks_blocked()  # hypercorn has read it
            stream.hold.set()
            with trio.fail_after(TIMEOUT_SECONDS):
                while not isinstance(event := await client.next_event(), Pong):
                    assert event is not None, "closed"
            assert event.payload == b"behind the backlog"
            # Every message had come, whole, before the pong.
            assert [(await client.message())["n"] for _ in range(40)] == list(range(40))
            assert not stream.raw.backlogged


async def test_the_clients_messages_are_dropped_and_never_hold_up_hypercorn():
    stream = Stream([])
    async with serving(App(websocket=stream)) as served:
        client = await open_client(served.port)
        with client.sock:
            for n in range(100):  # far more than hypercorn's queue to the app holds
                await client.send(TextMessage(data=f"message {n}"))
            await client.send(Ping(payload=b"still read"))
            with trio.fail_after(TIMEOUT_SECONDS):
                while not isinstance(event := await client.next_event(), Pong):
                    assert event is not None, "closed"
            assert event.payload == b"still read"
            await client.send_close(1000)
            assert (await client.until_closed()).code == 1000
        with trio.fail_after(TIMEOUT_SECONDS):
            await stream.ended.wait()
    assert stream.received == ["websocket.connect", "websocket.disconnect"]


@pytest.mark.parametrize("ending", ["close", "reset", "reset with a backlog"])
async def test_a_client_leaving_ends_its_stream_and_logs_nothing(
    caplog: pytest.LogCaptureFixture, ending: str
):
    caplog.set_level(logging.DEBUG)
    backlog = ending == "reset with a backlog"
    stream = Stream([frame(n, padding=20_000 if backlog else 0) for n in range(40)])
    async with serving(App(websocket=stream)) as served:
        client = await open_client(served.port, small_buffer=backlog)
        with client.sock:
            if backlog:
                await trio.testing.wait_all_tasks_blocked()
                assert stream.raw is not None
                assert stream.raw.backlogged  # the view waits in drain()
                reset_on_close(client)
            else:
                assert [(await client.message())["n"] for _ in range(40)] == list(range(40))
            if ending == "close":
                await client.send_close(1000)
                assert (await client.until_closed()).code == 1000
                assert await client.sock.recv(1) == b""  # nothing after the close; hung up
            elif ending == "reset":
                reset_on_close(client)
        with trio.fail_after(TIMEOUT_SECONDS):
            await stream.gone.wait()
            await stream.ended.wait()
        assert stream.raw is not None
        assert not stream.raw.open
        assert stream.raw.write_nowait(frame(99))  # dropped: nothing waits, nothing raised
        conn = await RawHttp.open(served.port)
        async with conn.stream:  # the server goes on
            assert (await conn.request("GET", "/"))[0] == 200
    assert stream.received == ["websocket.connect", "websocket.disconnect"]
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert logged == []


async def test_only_a_websocket_can_be_claimed():
    assert claim_raw_websocket() is None  # outside any connection
    claims: list[RawWebsocket | None] = []

    async def http(receive: Receive, send: Send) -> None:
        claims.append(claim_raw_websocket())
        await answer_ok(receive, send)

    async with serving(App(http=http)) as served:
        conn = await RawHttp.open(served.port)
        async with conn.stream:
            assert (await conn.request("GET", "/"))[0] == 200
    assert claims == [None]


class Refusal:
    """A websocket view that refuses the handshake with 403, and ends when released."""

    def __init__(self) -> None:
        self.refused = trio.Event()
        self.release = trio.Event()

    async def __call__(self, receive: Receive, send: Send) -> None:
        await receive()  # websocket.connect
        await send({
            "type": "websocket.http.response.start",
            "status": 403,
            "headers": [(b"content-length", b"0"), (b"connection", b"close")],
        })
        await send({"type": "websocket.http.response.body", "body": b""})
        self.refused.set()
        await self.release.wait()


@pytest.mark.parametrize("when", ["with the handshake", "after the refusal"])
async def test_a_body_on_a_refused_handshake_leaves_the_apps_answer_the_only_one(
    caplog: pytest.LogCaptureFixture, when: str
):
    # hypercorn answered such a body with a 400 of its own: racing the app's
    # answer, or, after it, refused by h11 with an error in the connection's task.
    caplog.set_level(logging.DEBUG)
    refusal = Refusal()
    handshake = (
        b"GET /ws HTTP/1.1\r\nHost: eventd\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Content-Length: 4\r\n\r\n"
    )
    async with serving(App(websocket=refusal)) as served:
        stream = await trio.open_tcp_stream("127.0.0.1", served.port)
        async with stream:
            with trio.fail_after(TIMEOUT_SECONDS):
                if when == "with the handshake":
                    await stream.send_all(handshake + b"body")
                    await refusal.refused.wait()
                else:
                    await stream.send_all(handshake)
                    await refusal.refused.wait()
                    await stream.send_all(b"body")
                await trio.testing.wait_all_tasks_blocked()  # hypercorn has read it all
                refusal.release.set()
                answer = b""
                while chunk := await stream.receive_some():
                    answer += chunk
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert answer.count(b"HTTP/1.1 ") == 1
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_hypercorn_lacking_what_the_seam_uses_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
):
    async def accept_elsewhere(stream: ws_stream.WSStream, message: object) -> None:
        pass

    monkeypatch.delattr(tcp_server.TCPServer, "protocol_send")
    monkeypatch.setattr(ws_stream.WSStream, "_accept", accept_elsewhere)
    with pytest.raises(RuntimeError) as refused:
        raw_websocket._check_hypercorn()
    message = str(refused.value)
    assert "TCPServer.protocol_send()" in message
    assert "WSStream.connection (set by _accept)" in message


@pytest.mark.slow
async def test_the_daemon_logs_no_error_when_websocket_clients_leave(
    fresh_database_url: str, workdir: Path
):
    daemon = DaemonProcess(fresh_database_url, workdir).start()
    try:
        async with httpx.AsyncClient(base_url=daemon.url) as http:
            event = await create_event(http)
            path = f"/ws/events/{event['id']}"
            async with open_websocket_url(ws_url(daemon.url, path)) as ws:  # leaves with 1000
                await next_message(ws)
            for ending in ("close", "reset"):
                client = await RawClient.open(daemon.port, path)
                with client.sock:
                    await client.message()
                    if ending == "close":
                        await client.send_close(GOING_AWAY)
                        assert (await client.until_closed()).code == GOING_AWAY
                    else:
                        reset_on_close(client)
            with trio.fail_after(TIMEOUT_SECONDS):
                # Every leaving handled: the daemon's state, seen only through /health, polled.
                while await websocket_connections(http):  # noqa: ASYNC110
                    await trio.sleep(0.05)
    finally:
        assert daemon.stop() == 0, daemon.log()
    log = daemon.log()
    for marker in (" ERROR ", " WARNING ", "Traceback"):
        assert marker not in log, log


async def websocket_connections(http: httpx.AsyncClient) -> int:
    return int((await http.get("/health")).json()["checks"]["websocket"]["connections"])
