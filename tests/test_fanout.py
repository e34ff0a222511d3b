"""The fan-out and the raw websocket write path, over real loopback TCP sockets.

Rules of this file: no daemon and no database. The server end of each
connection is a real socket wrapped the way hypercorn holds it; the pieces of
hypercorn's connection that the write path touches (the send lock, the
wsproto connection, the stream's ``closed`` flag) stand in for it. The client
end is read by wsproto's client, which checks every frame. Every wait is
bounded by ``trio.fail_after``; pings run on trio's autojump clock.
"""

from __future__ import annotations

import dataclasses
import socket
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
import trio
import trio.testing
import wsproto
from wsproto.events import CloseConnection, Ping, TextMessage

from eventd.http.fanout import Fanout, Stream
from eventd.http.raw_websocket import RawWebsocket
from eventd.realtime.changes import Change
from eventd.realtime.outbox import TRY_AGAIN_LATER
from tests.support import AT, EVENT_A, capacity, make_event, updated

TIMEOUT_SECONDS = 10
RATIO = 0.1
GOING_AWAY = 1001


@dataclasses.dataclass
class Peer:
    """The client end: reads what the server wrote, frame by checked frame."""

    sock: trio.socket.SocketType
    ws: wsproto.Connection = dataclasses.field(
        default_factory=lambda: wsproto.Connection(wsproto.ConnectionType.CLIENT)
    )
    _parts: list[str] = dataclasses.field(default_factory=list)  # of a message still arriving
    _unread: list[Any] = dataclasses.field(default_factory=list)

    async def read(self, count: int) -> list[Any]:
        """The next ``count`` events: whole messages (as TextMessage), pings, the close."""
        with trio.fail_after(TIMEOUT_SECONDS):
            while len(self._unread) < count:
                data = await self.sock.recv(1 << 16)
                assert data, f"closed after {self._unread}"
                self.ws.receive_data(data)
                for event in self.ws.events():
                    if isinstance(event, TextMessage):
                        self._parts.append(event.data)
                        if not event.message_finished:
                            continue
                        event = TextMessage(data="".join(self._parts))
                        self._parts.clear()
                    self._unread.append(event)
        events, self._unread = self._unread[:count], self._unread[count:]
        return events

    async def messages(self, count: int) -> list[str]:
        events = await self.read(count)
        assert all(isinstance(e, TextMessage) for e in events), events
        return [e.data for e in events]

    async def read_until_close(self) -> list[Any]:
        """Every event up to and with the close frame, which must be the last."""
        events: list[Any] = []
        while not events or not isinstance(events[-1], CloseConnection):
            events.extend(await self.read(1))
        assert not self._unread
        assert not self._parts
        return events


@dataclasses.dataclass
class Connection:
    """One accepted websocket: its RawWebsocket, hypercorn's side of it, and the peer."""

    raw: RawWebsocket
    hypercorn: Any  # what RawWebsocket touches of hypercorn's TCPServer
    stream_state: Any  # ... and of its WSStream
    peer: Peer


@asynccontextmanager
async def connection(*, small_buffers: bool = False) -> AsyncIterator[Connection]:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = trio.socket.socket()
    if small_buffers:  # so that a peer that does not read fills them soon
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await client.connect(listener.getsockname())
    server_sock, _ = await listener.accept()
    listener.close()
    if small_buffers:
        server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    closed_events: list[Any] = []

    async def handle(event: Any) -> None:
        closed_events.append(event)

    hypercorn = types.SimpleNamespace(
        stream=trio.SocketStream(server_sock),
        send_lock=trio.Lock(),
        protocol=types.SimpleNamespace(handle=handle, closed_events=closed_events),
    )
    stream_state = types.SimpleNamespace(
        closed=False, connection=wsproto.Connection(wsproto.ConnectionType.SERVER)
    )
    raw = RawWebsocket(cast(Any, hypercorn), cast(Any, stream_state))
    try:
        yield Connection(raw, hypercorn, stream_state, Peer(client))
    finally:
        server_sock.close()
        client.close()


def big_update(seq: int, size: int = 20_000) -> Change:
    event = dataclasses.replace(make_event(version=seq), description="x" * size)
    return Change("eventUpdated", event, seq, AT)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every buffer handed to RawWebsocket.write_nowait, as handed."""
    handed: list[bytes] = []
    write_nowait = RawWebsocket.write_nowait

    def spy(self: RawWebsocket, frames: bytes) -> bool:
        handed.append(bytes(frames))
        return write_nowait(self, frames)

    monkeypatch.setattr(RawWebsocket, "write_nowait", spy)
    return handed


async def test_queued_changes_go_out_in_one_write_and_arrive_as_separate_messages(
    writes: list[bytes],
) -> None:
    fanout = Fanout(ping_interval_seconds=3600)
    async with connection() as conn, trio.open_nursery() as nursery:
        await nursery.start(fanout.run)
        stream = Stream(fanout, conn.raw, 64, RATIO, close_after_delete=False)
        first = [updated(EVENT_A, 1), capacity(EVENT_A, 2, confirmed=1), capacity(EVENT_A, 3)]
        for change in first:
            stream.outbox.put_nowait(change)  # before serving, like a snapshot and a replay
        nursery.start_soon(stream.serve)
        assert await conn.peer.messages(3) == [c.encode(RATIO) for c in first]
        later = [capacity(EVENT_A, 4, confirmed=2), capacity(EVENT_A, 5, confirmed=3)]
        for change in later:  # one actor turn: both before the fan-out runs
            stream.outbox.put_nowait(change)
        assert await conn.peer.messages(2) == [c.encode(RATIO) for c in later]
        assert writes == [
            b"".join(c.frame(RATIO) for c in first),
            b"".join(c.frame(RATIO) for c in later),
        ]
        nursery.cancel_scope.cancel()


async def test_a_full_socket_backlogs_then_everything_arrives_whole_and_in_order() -> None:
    fanout = Fanout(ping_interval_seconds=3600)
    changes = [big_update(seq) for seq in range(1, 41)]  # 800 KB: far more than the buffers
    async with connection(small_buffers=True) as conn, trio.open_nursery() as nursery:
        await nursery.start(fanout.run)
        stream = Stream(fanout, conn.raw, 1000, RATIO, close_after_delete=False)
        nursery.start_soon(stream.serve)
        for change in changes:  # the peer reads nothing meanwhile
            stream.outbox.put_nowait(change)
            await trio.testing.wait_all_tasks_blocked()
        assert conn.raw.backlogged
        assert 0 < len(stream.outbox) < len(changes)  # queued behind the backlog
        assert await conn.peer.messages(len(changes)) == [c.encode(RATIO) for c in changes]
        assert not conn.raw.backlogged
        assert len(stream.outbox) == 0
        nursery.cancel_scope.cancel()


async def test_hypercorn_frames_wait_behind_the_backlog_and_nothing_follows_a_close() -> None:
    fanout = Fanout(ping_interval_seconds=3600)
    changes = [big_update(seq) for seq in range(1, 21)]
    async with connection(small_buffers=True) as conn, trio.open_nursery() as nursery:
        await nursery.start(fanout.run)
        stream = Stream(fanout, conn.raw, 1000, RATIO, close_after_delete=False)
        nursery.start_soon(stream.serve)
        for change in changes:
            stream.outbox.put_nowait(change)
            await trio.testing.wait_all_tasks_blocked()
        assert conn.raw.backlogged
        # hypercorn closes the websocket: wsproto frames the close, then it is sent.
        close = conn.stream_state.connection.send(CloseConnection(code=GOING_AWAY))
        nursery.start_soon(conn.raw.send, close)
        await trio.testing.wait_all_tasks_blocked()
        assert not conn.raw.open
        stream.outbox.put_nowait(updated(EVENT_A, 99))  # after the close: never written
        events = await conn.peer.read_until_close()
        messages = [e.data for e in events[:-1]]
        # What was on its way when the close came, whole and in order; what was
        # still queued is dropped: nothing may follow a close frame.
        assert 0 < len(messages) < len(changes)
        assert messages == [c.encode(RATIO) for c in changes[: len(messages)]]
        assert events[-1].code == GOING_AWAY
        nursery.cancel_scope.cancel()


async def test_every_stream_is_pinged_each_interval(autojump_clock: trio.testing.MockClock) -> None:
    fanout = Fanout(ping_interval_seconds=2)
    async with connection() as one, connection() as two, trio.open_nursery() as nursery:
        await nursery.start(fanout.run)
        for conn in (one, two):
            nursery.start_soon(Stream(fanout, conn.raw, 8, RATIO, close_after_delete=False).serve)
        started = trio.current_time()
        for conn in (one, two):
            assert [type(e) for e in await conn.peer.read(2)] == [Ping, Ping]
        assert trio.current_time() - started == pytest.approx(4)
        nursery.cancel_scope.cancel()


async def test_a_deleted_event_is_the_last_message_then_1000() -> None:
    fanout = Fanout(ping_interval_seconds=3600)
    async with connection() as conn, trio.open_nursery() as nursery:
        await nursery.start(fanout.run)
        stream = Stream(fanout, conn.raw, 8, RATIO, close_after_delete=True)
        gone = Change("eventDeleted", make_event(version=3), 3, AT)
        for change in (capacity(EVENT_A, 2), gone, capacity(EVENT_A, 4)):
            stream.outbox.put_nowait(change)
        with trio.fail_after(TIMEOUT_SECONDS):
            assert await stream.serve() == 1000
        assert await conn.peer.messages(2) == [
            capacity(EVENT_A, 2).encode(RATIO),
            gone.encode(RATIO),
        ]
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("code", [GOING_AWAY, TRY_AGAIN_LATER])
async def test_serve_returns_the_code_the_outbox_closes_with(code: int) -> None:
    fanout = Fanout(ping_interval_seconds=3600)
    async with connection() as conn, trio.open_nursery() as nursery:
        await nursery.start(fanout.run)
        stream = Stream(fanout, conn.raw, 8, RATIO, close_after_delete=False)

        async def close_once_serve_waits() -> None:
            await trio.testing.wait_all_tasks_blocked()
            stream.outbox.close_nowait(code)

        nursery.start_soon(close_once_serve_waits)
        with trio.fail_after(TIMEOUT_SECONDS):
            assert await stream.serve() == code
        nursery.cancel_scope.cancel()


async def test_a_client_gone_ends_serve_even_while_it_waits_for_the_socket() -> None:
    fanout = Fanout(ping_interval_seconds=3600)
    async with connection(small_buffers=True) as conn, trio.open_nursery() as nursery:
        await nursery.start(fanout.run)
        stream = Stream(fanout, conn.raw, 1000, RATIO, close_after_delete=False)
        result: list[int | None] = []
        served = trio.Event()

        async def serve() -> None:
            result.append(await stream.serve())
            served.set()

        nursery.start_soon(serve)
        for seq in range(1, 41):
            stream.outbox.put_nowait(big_update(seq))
            await trio.testing.wait_all_tasks_blocked()
        assert conn.raw.backlogged  # serve() waits for a socket nobody reads
        conn.stream_state.closed = True  # hypercorn's StreamClosed...
        assert conn.raw.on_gone is not None
        conn.raw.on_gone()  # ... and its websocket.disconnect
        with trio.fail_after(TIMEOUT_SECONDS):
            await served.wait()
        assert result == [None]
        nursery.cancel_scope.cancel()


async def test_a_stream_that_fails_is_closed_with_1011_and_the_others_carry_on() -> None:
    fanout = Fanout(ping_interval_seconds=3600)
    async with connection() as bad, connection() as good, trio.open_nursery() as nursery:
        await nursery.start(fanout.run)
        failing = Stream(fanout, bad.raw, 8, RATIO, close_after_delete=False)
        healthy = Stream(fanout, good.raw, 8, RATIO, close_after_delete=False)
        nursery.start_soon(healthy.serve)
        codes: list[int | None] = []
        served = trio.Event()

        async def serve_failing() -> None:
            codes.append(await failing.serve())
            served.set()

        nursery.start_soon(serve_failing)
        await trio.testing.wait_all_tasks_blocked()
        unrenderable = Change("eventUpdated", cast(Any, None), 1, AT)  # no event to render
        failing.outbox.put_nowait(unrenderable)
        healthy.outbox.put_nowait(fine := updated(EVENT_A, 1))
        assert await good.peer.messages(1) == [fine.encode(RATIO)]
        with trio.fail_after(TIMEOUT_SECONDS):
            await served.wait()
        assert codes == [1011]
        nursery.cancel_scope.cancel()

