"""What a WebSocket client may send (eventd.http.websocket_input, eventd.http.raw_websocket).

A message over ``websocket.max_message_bytes`` is closed with 1009 as its
frame header comes; a violation of RFC 6455 with the code it prescribes (1002
protocol error, 1007 invalid data), in one WARNING line and no traceback.

Rules of this file: the guard alone is fed bytes; the rest runs eventd's serve
loop in this process on a free loopback port, serving a small ASGI app that
claims its websockets, and the client writes raw frames to a plain socket.
Every wait is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import logging
import struct

import pytest
import trio
import trio.testing
import wsproto
from hypothesis import given
from hypothesis import strategies as st
from wsproto.events import AcceptConnection, CloseConnection, Ping, Pong, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from eventd.config import Config, WebsocketConfig
from eventd.http.raw_websocket import claim_raw_websocket
from eventd.http.websocket_input import MessageSizeGuard
from tests.support import WAIT_SECONDS, App, RawClient, RawHttp, Receive, Send, serving

LIMIT = 1000  # websocket.max_message_bytes of this file's servers
TEXT, BINARY, CONTINUATION, CLOSE, PING = 0x1, 0x2, 0x0, 0x8, 0x9
PROTOCOL_ERROR, INVALID_DATA, MESSAGE_TOO_BIG = 1002, 1007, 1009


def client_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    announced: int | None = None,
) -> bytes:
    """A client's frame as raw as a test needs: any opcode and bits, any announced length.

    The mask is all zeros, so the payload goes as it is.
    """
    length = len(payload) if announced is None else announced
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = bytes([first, mask_bit | length])
    elif length < 2**16:
        head = bytes([first, mask_bit | 126]) + struct.pack("!H", length)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack("!Q", length)
    return head + (b"\0\0\0\0" if masked else b"") + payload


# --- the guard alone --------------------------------------------------------------


def test_a_message_within_the_limit_passes_whole_or_in_fragments():
    guard = MessageSizeGuard(LIMIT)
    assert guard.end_of_oversized_header(client_frame(TEXT, b"x" * LIMIT)) is None
    fragments = (
        client_frame(TEXT, b"x" * 600, fin=False)
        + client_frame(PING, b"p" * 125)  # control frames are no part of the message
        + client_frame(CONTINUATION, b"x" * 400)
    )
    assert guard.end_of_oversized_header(fragments) is None


@pytest.mark.parametrize("announced", [LIMIT + 1, 2**16, 2**62, 2**64 - 1])
def test_a_header_announcing_more_is_found_where_it_ends(announced: int):
    before = client_frame(BINARY, b"ok")
    header = client_frame(BINARY, announced=announced)
    guard = MessageSizeGuard(LIMIT)
    assert guard.end_of_oversized_header(before + header + b"payload") == len(before + header)


def test_a_fragment_that_takes_its_message_over_is_found():
    first = client_frame(TEXT, b"x" * 600, fin=False)
    second = client_frame(CONTINUATION, announced=401, fin=True)
    guard = MessageSizeGuard(LIMIT)
    assert guard.end_of_oversized_header(first + second + b"x" * 401) == len(first + second)


@given(
    sizes=st.lists(st.integers(0, 2 * LIMIT), min_size=1, max_size=6),
    cuts=st.lists(st.integers(1, 40), max_size=30),
)
def test_the_verdict_does_not_depend_on_how_the_bytes_arrive(sizes: list[int], cuts: list[int]):
    frames = b"".join(client_frame(BINARY, bytes(size)) for size in sizes)
    whole = MessageSizeGuard(LIMIT).end_of_oversized_header(frames)
    guard, at, found = MessageSizeGuard(LIMIT), 0, None
    for cut in [*cuts, len(frames)]:
        read = frames[at : at + cut]
        end = guard.end_of_oversized_header(read)
        if end is not None:
            found = at + end
            break
        at += len(read)
    assert found == whole
    first_over = next((n for n, size in enumerate(sizes) if size > LIMIT), None)
    if first_over is None:
        assert whole is None
    else:  # the end of that frame's header: everything before it, and its header
        ahead = sum(len(client_frame(BINARY, bytes(size))) for size in sizes[:first_over])
        assert whole == ahead + len(client_frame(BINARY, announced=sizes[first_over]))


# --- eventd's server ----------------------------------------------------------------


class Listener:
    """A websocket view that claims its websocket, accepts, and waits for the end."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.ended = trio.Event()

    async def __call__(self, receive: Receive, send: Send) -> None:
        raw = claim_raw_websocket()
        assert raw is not None
        self.received.append((await receive())["type"])
        await send({"type": "websocket.accept"})
        self.received.append((await receive())["type"])
        self.ended.set()


def limited_config() -> Config:
    return Config(websocket=WebsocketConfig(max_message_bytes=LIMIT))


async def closed_with(client: RawClient, frames: bytes) -> CloseConnection:
    """Send ``frames``; the server's close, once it has hung up after it."""
    await client.sock.send(frames)
    close = await client.until_closed()
    with trio.fail_after(WAIT_SECONDS):
        assert await client.sock.recv(1) == b""  # nothing after the close; hung up
    return close


@pytest.mark.parametrize("announced", [LIMIT + 1, 2**62])
async def test_a_frame_announcing_more_is_closed_with_1009_before_its_payload(
    caplog: pytest.LogCaptureFixture, announced: int
):
    # Only the header is sent: the server needs nothing more to decide.
    listener = Listener()
    async with serving(App(websocket=listener), limited_config()) as served:
        client = await RawClient.open(served.port, "/ws")
        port = client.sock.getsockname()[1]
        with client.sock:
            close = await closed_with(client, client_frame(BINARY, announced=announced))
        with trio.fail_after(WAIT_SECONDS):
            await listener.ended.wait()
    assert close.code == MESSAGE_TOO_BIG
    assert listener.received == ["websocket.connect", "websocket.disconnect"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"closing the websocket of 127.0.0.1:{port} with 1009:"
        f" a message over {LIMIT} bytes"
    ]


async def test_a_fragmented_message_going_over_is_closed_with_1009():
    async with serving(App(websocket=Listener()), limited_config()) as served:
        client = await RawClient.open(served.port, "/ws")
        with client.sock:
            close = await closed_with(
                client,
                client_frame(TEXT, b"x" * 600, fin=False)
                + client_frame(CONTINUATION, announced=401),
            )
    assert close.code == MESSAGE_TOO_BIG


async def test_a_message_as_long_as_the_limit_is_read_and_the_connection_goes_on():
    async with serving(App(websocket=Listener()), limited_config()) as served:
        client = await RawClient.open(served.port, "/ws")
        with client.sock:
            await client.send(TextMessage(data="x" * LIMIT))
            await client.send(Ping(payload=b"still here"))
            with trio.fail_after(WAIT_SECONDS):
                while not isinstance(event := await client.next_event(), Pong):
                    assert event is not None, "closed"
            assert event.payload == b"still here"


VIOLATIONS = {
    "unmasked": (client_frame(TEXT, b"hi", masked=False), PROTOCOL_ERROR),
    "invalid UTF-8": (client_frame(TEXT, b"\xff\xfe"), INVALID_DATA),
    "UTF-8 cut between fragments and never ended": (
        client_frame(TEXT, "é".encode()[:1], fin=False) + client_frame(CONTINUATION, b"x"),
        INVALID_DATA,
    ),
    "reserved data opcode": (client_frame(0x3, b"x"), PROTOCOL_ERROR),
    "reserved control opcode": (client_frame(0xB, b"x"), PROTOCOL_ERROR),
    "RSV1 (nothing negotiated)": (client_frame(TEXT, b"x", rsv=0b100), PROTOCOL_ERROR),
    "RSV2": (client_frame(TEXT, b"x", rsv=0b010), PROTOCOL_ERROR),
    "RSV3": (client_frame(BINARY, b"x", rsv=0b001), PROTOCOL_ERROR),
    "fragmented ping": (client_frame(PING, b"x", fin=False), PROTOCOL_ERROR),
    "ping over 125 bytes": (client_frame(PING, b"x" * 126), PROTOCOL_ERROR),
    "continuation of nothing": (client_frame(CONTINUATION, b"x"), PROTOCOL_ERROR),
    "new message inside a fragmented one": (
        client_frame(TEXT, b"x", fin=False) + client_frame(TEXT, b"y"),
        PROTOCOL_ERROR,
    ),
    "close with a one-byte payload": (client_frame(CLOSE, b"\x03"), PROTOCOL_ERROR),
    "close with a reserved code": (client_frame(CLOSE, (1004).to_bytes(2, "big")), PROTOCOL_ERROR),
    "close with a reason that is no UTF-8": (
        client_frame(CLOSE, (1000).to_bytes(2, "big") + b"\xff"),
        INVALID_DATA,
    ),
    "garbage": (b"\x8f\x80garbage-that-is-no-frame" * 10, PROTOCOL_ERROR),
}


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG], ids=["info", "debug"])
@pytest.mark.parametrize("violation", list(VIOLATIONS))
async def test_a_violation_is_closed_with_its_code_and_logged_in_one_line(
    caplog: pytest.LogCaptureFixture, violation: str, level: int
):
    caplog.set_level(level)
    frames, code = VIOLATIONS[violation]
    listener = Listener()
    async with serving(App(websocket=listener), limited_config()) as served:
        client = await RawClient.open(served.port, "/ws")
        with client.sock:
            close = await closed_with(client, frames)
        with trio.fail_after(WAIT_SECONDS):
            await listener.ended.wait()
        conn = await RawHttp.open(served.port)
        async with conn.stream:  # the server goes on
            assert (await conn.request("GET", "/"))[0] == 200
    assert close.code == code
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelname) for r in logged] == [("eventd.http.raw_websocket", "WARNING")]
    assert f" with {code}: " in logged[0].getMessage()
    assert "\n" not in logged[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)  # no traceback, at any level


async def test_permessage_deflate_is_not_taken_up():
    # A compressed message's size is not in its header: compression is
    # declined, and a compressed frame is then a violation.
    async with serving(App(websocket=Listener()), limited_config()) as served:
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", served.port))
        client = RawClient(sock)
        client.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        with sock:
            await client.send(
                Request(host="eventd", target="/ws", extensions=[PerMessageDeflate()])
            )
            with trio.fail_after(WAIT_SECONDS):
                while not isinstance(accepted := await client.next_event(), AcceptConnection):
                    assert accepted is not None, "closed during the handshake"
            assert accepted.extensions == []
            close = await closed_with(client, client_frame(TEXT, b"\x01\x00", rsv=0b100))
    assert close.code == PROTOCOL_ERROR
