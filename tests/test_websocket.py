"""WebSocket streams against the real daemon, with real clients (trio-websocket).

Rules: loopback only; every wait bounded by ``trio.fail_after``; tests that
need a daemon configured their own way (queue size, pings, shutdown) start
one of their own.
"""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest
import trio
import trio_websocket
import wsproto.connection
from trio_websocket import ConnectionClosed, open_websocket_url
from wsproto.events import CloseConnection, Ping, Pong

from eventd.config import WebsocketConfig
from tests.conftest import create_attendee, create_event, register
from tests.support import WAIT_SECONDS, DaemonProcess, RawClient, next_message, ws_url
from tests.test_invariant import make_attendees

MAX_MESSAGE_BYTES = WebsocketConfig().max_message_bytes  # the shared daemon's


async def test_event_stream_starts_with_a_snapshot(client: httpx.AsyncClient, daemon):
    event = await create_event(client, maxAttendees=5)
    async with open_websocket_url(ws_url(daemon.url, f"/ws/events/{event['id']}")) as ws:
        first = await next_message(ws)
    assert first["type"] == "snapshot"
    assert first["eventId"] == event["id"]
    assert first["seq"] == event["version"] == 1
    assert first["data"] == event
    assert first["at"].endswith("Z")


async def refused_handshake(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """Ask to upgrade with a plain request, to read the refusal's status and body."""
    return await client.get(
        path,
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )


async def test_unknown_event_refuses_the_handshake_with_404(client: httpx.AsyncClient):
    for path in (f"/ws/events/{uuid.uuid4()}", "/ws/events/not-a-uuid"):
        response = await refused_handshake(client, path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"


async def test_bad_since_refuses_the_handshake_with_400(client: httpx.AsyncClient):
    event = await create_event(client)
    for since in ("-1", "abc", "", "²", "9" * 30):
        response = await refused_handshake(client, f"/ws/events/{event['id']}?since={since}")
        assert response.status_code == 400, since
        assert response.json()["code"] == "validation_failed"


async def test_concurrent_registrations_arrive_in_order_without_gaps(
    client: httpx.AsyncClient, daemon, database_url: str
):
    event = await create_event(client, maxAttendees=150)
    attendees = await make_attendees(database_url, 200)
    async with open_websocket_url(ws_url(daemon.url, f"/ws/events/{event['id']}")) as ws:
        assert (await next_message(ws))["type"] == "snapshot"
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(base_url=daemon.url, limits=limits, timeout=60) as many:
            async with trio.open_nursery() as nursery:
                for attendee_id in attendees:
                    nursery.start_soon(
                        lambda a=attendee_id: many.post(
                            "/registrations",
                            json={"eventId": event["id"], "attendeeId": a, "waitlist": True},
                        )
                    )
        messages = [await next_message(ws) for _ in range(200)]
    assert [m["seq"] for m in messages] == list(range(2, 202))
    assert {m["type"] for m in messages} == {"eventCapacityUpdate"}
    confirmed = [m["data"]["registeredCount"] for m in messages]
    waitlisted = [m["data"]["waitlistCount"] for m in messages]
    assert confirmed == [min(n, 150) for n in range(1, 201)]
    assert waitlisted == [max(0, n - 150) for n in range(1, 201)]
    assert messages[-1]["data"]["warning"] == "full"


async def test_warnings_follow_the_almost_full_ratio(client: httpx.AsyncClient, daemon):
    event = await create_event(client, maxAttendees=20)  # almostFull at <= 2 spots
    async with open_websocket_url(ws_url(daemon.url, f"/ws/events/{event['id']}")) as ws:
        await next_message(ws)
        warnings = []
        for _ in range(20):
            person = await create_attendee(client)
            assert (await register(client, event["id"], person["id"])).status_code == 201
            message = await next_message(ws)
            warnings.append((message["data"]["availableSpots"], message["data"]["warning"]))
    assert warnings[:17] == [(spots, None) for spots in range(19, 2, -1)]
    assert warnings[17:] == [(2, "almostFull"), (1, "almostFull"), (0, "full")]


async def test_resume_with_since_inside_the_buffer_replays_exactly_the_missed(
    client: httpx.AsyncClient, daemon
):
    event = await create_event(client, maxAttendees=10)
    url = ws_url(daemon.url, f"/ws/events/{event['id']}")
    async with open_websocket_url(url) as ws:
        await next_message(ws)
        for _ in range(2):
            person = await create_attendee(client)
            await register(client, event["id"], person["id"])
            last_seen = (await next_message(ws))["seq"]
    assert last_seen == 3
    for _ in range(3):  # missed while away
        person = await create_attendee(client)
        await register(client, event["id"], person["id"])
    async with open_websocket_url(f"{url}?since={last_seen}") as ws:
        replayed = [await next_message(ws) for _ in range(3)]
        assert [(m["type"], m["seq"]) for m in replayed] == [
            ("eventCapacityUpdate", 4),
            ("eventCapacityUpdate", 5),
            ("eventCapacityUpdate", 6),
        ]
        assert replayed[-1]["data"]["registeredCount"] == 5
        person = await create_attendee(client)
        await register(client, event["id"], person["id"])
        live = await next_message(ws)
        assert (live["type"], live["seq"]) == ("eventCapacityUpdate", 7)


async def test_resume_at_the_current_seq_sends_only_live_messages(
    client: httpx.AsyncClient, daemon
):
    event = await create_event(client, maxAttendees=10)
    person = await create_attendee(client)
    await register(client, event["id"], person["id"])
    url = ws_url(daemon.url, f"/ws/events/{event['id']}?since=2")
    async with open_websocket_url(url) as ws:
        await client.patch(f"/events/{event['id']}", json={"name": "Renamed"})
        message = await next_message(ws)
    assert (message["type"], message["seq"], message["data"]["name"]) == (
        "eventUpdated",
        3,
        "Renamed",
    )


async def test_resume_older_than_the_buffer_or_from_the_future_gets_a_snapshot(
    client: httpx.AsyncClient, daemon, database_url: str
):
    event = await create_event(client, maxAttendees=400)
    attendees = await make_attendees(database_url, 300)
    async with httpx.AsyncClient(base_url=daemon.url, timeout=60) as c:
        for attendee_id in attendees:  # 300 changes: more than the 256 held
            r = await c.post(
                "/registrations", json={"eventId": event["id"], "attendeeId": attendee_id}
            )
            assert r.status_code == 201
    for since in (1, 40, 10_000):
        url = ws_url(daemon.url, f"/ws/events/{event['id']}?since={since}")
        async with open_websocket_url(url) as ws:
            first = await next_message(ws)
        assert (first["type"], first["seq"]) == ("snapshot", 301), since
        assert first["data"]["registeredCount"] == 300
    # Still inside the buffer: replay, not snapshot.
    url = ws_url(daemon.url, f"/ws/events/{event['id']}?since=290")
    async with open_websocket_url(url) as ws:
        first = await next_message(ws)
    assert (first["type"], first["seq"]) == ("eventCapacityUpdate", 291)
    # A replay longer than websocket.queue_size (64) arrives whole, uncollapsed.
    url = ws_url(daemon.url, f"/ws/events/{event['id']}?since=100")
    async with open_websocket_url(url) as ws:
        replayed = [await next_message(ws) for _ in range(201)]
    assert [m["seq"] for m in replayed] == list(range(101, 302))


async def test_event_stream_closes_with_1000_after_deletion(client: httpx.AsyncClient, daemon):
    event = await create_event(client)
    async with open_websocket_url(ws_url(daemon.url, f"/ws/events/{event['id']}")) as ws:
        await next_message(ws)
        assert (await client.delete(f"/events/{event['id']}")).status_code == 204
        deleted = await next_message(ws)
        assert deleted == {**deleted, "type": "eventDeleted", "seq": 2, "data": {"id": event["id"]}}
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(WAIT_SECONDS):
            await ws.get_message()
    assert closed.value.reason.code == 1000


@pytest.mark.parametrize("path", ["/ws", "/"])
async def test_global_stream_carries_every_kind_of_change(
    client: httpx.AsyncClient, daemon, path: str
):
    async with open_websocket_url(ws_url(daemon.url, path)) as ws:
        event = await create_event(client, maxAttendees=3)
        mine: list[dict[str, Any]] = []

        async def collect(count: int) -> None:
            while len(mine) < count:
                message = await next_message(ws)
                if message["eventId"] == event["id"]:  # other tests share the daemon
                    mine.append(message)

        await collect(1)
        person = await create_attendee(client)
        await register(client, event["id"], person["id"])
        await collect(2)
        await client.patch(f"/events/{event['id']}", json={"maxAttendees": 4})
        await collect(4)
        await client.delete(f"/events/{event['id']}")
        await collect(5)
    assert [(m["type"], m["seq"]) for m in mine] == [
        ("newEvent", 1),
        ("eventCapacityUpdate", 2),
        ("eventUpdated", 3),
        ("eventCapacityUpdate", 4),
        ("eventDeleted", 5),
    ]
    assert mine[0]["data"]["id"] == event["id"]
    assert mine[2]["data"]["maxAttendees"] == 4
    assert mine[3]["data"]["availableSpots"] == 3


async def test_malformed_frames_from_clients_break_nothing(client: httpx.AsyncClient, daemon):
    event = await create_event(client, maxAttendees=5)
    url = ws_url(daemon.url, f"/ws/events/{event['id']}")
    async with open_websocket_url(url) as ws:
        await next_message(ws)
        await ws.send_message(b"\x00\xff garbage")
        await ws.send_message("{not json")
        await ws.send_message(json.dumps({"type": "register", "eventId": event["id"]}))
        await ws.send_message("x" * MAX_MESSAGE_BYTES)  # as long as a message may be
        person = await create_attendee(client)
        await register(client, event["id"], person["id"])
        update = await next_message(ws)
        assert (update["type"], update["seq"]) == ("eventCapacityUpdate", 2)
    # A peer that breaks the protocol itself: closed with 1002, nothing else.
    host, port = daemon.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(_handshake(f"/ws/events/{event['id']}", f"{host}:{port}"))
        head, _, frames = raw.recv(4096).partition(b"\r\n\r\n")
        assert b" 101 " in head.split(b"\r\n")[0]
        raw.sendall(b"\x8f\x80garbage-that-is-no-frame" * 10)
        received = _received_until_closed(raw)
    assert received is not None
    server = wsproto.connection.Connection(wsproto.connection.ConnectionType.CLIENT)
    server.receive_data(frames + received)
    close = [e for e in server.events() if isinstance(e, CloseConnection)]
    assert [c.code for c in close] == [1002]  # a protocol error
    assert (await client.get("/health")).status_code == 200
    assert (await client.get(f"/events/{event['id']}")).json()["registeredCount"] == 1


async def test_a_message_over_the_limit_is_closed_with_1009(client: httpx.AsyncClient, daemon):
    event = await create_event(client)
    url = ws_url(daemon.url, f"/ws/events/{event['id']}")
    async with open_websocket_url(url) as ws:
        await next_message(ws)
        await ws.send_message("x" * (MAX_MESSAGE_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(WAIT_SECONDS):
            await ws.get_message()
    assert closed.value.reason.code == 1009
    assert (await client.get("/health")).status_code == 200


async def test_incomplete_huge_frames_cost_the_daemon_no_memory(client: httpx.AsyncClient, daemon):
    # Ten clients each announce a 15 MiB message and send all of it but the
    # last byte: the daemon once held every byte (135 MiB, never given back).
    # Now each is closed as its header comes, and nothing of it is kept.
    event = await create_event(client)
    path = f"/ws/events/{event['id']}"
    size = 15 * 2**20
    rss_before = _rss_kib(daemon.process.pid)

    async def send_a_huge_frame() -> None:
        raw = await RawClient.open(daemon.port, path)
        with raw.sock:
            await raw.message()  # the snapshot
            header = bytes([0x82, 0xFF]) + size.to_bytes(8, "big") + b"\0\0\0\0"
            stream = trio.SocketStream(raw.sock)
            try:
                await stream.send_all(header + bytes(size - 1))
            except trio.BrokenResourceError:  # closed by the daemon: the rest goes nowhere
                pass
            with trio.fail_after(WAIT_SECONDS):
                with contextlib.suppress(trio.BrokenResourceError):  # reset: the rest unread
                    while await stream.receive_some():
                        pass

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(send_a_huge_frame)
    grown_kib = _rss_kib(daemon.process.pid) - rss_before
    assert grown_kib < 20 * 1024, grown_kib
    assert (await client.get("/health")).status_code == 200


def _closed_by_peer(raw: socket.socket) -> bool:
    """Read until the peer closes (True) or the socket's timeout passes (False)."""
    return _received_until_closed(raw) is not None


def _received_until_closed(raw: socket.socket) -> bytes | None:
    """What the peer sent until it closed; None if the socket's timeout passed first."""
    received = b""
    try:
        while chunk := raw.recv(65536):
            received += chunk
    except ConnectionError:
        pass
    except TimeoutError:
        return None
    return received


async def _drain_until_closed(ws: trio_websocket.WebSocketConnection) -> tuple[list[int], int]:
    """The seqs still delivered, and the close code that ended them."""
    seqs = []
    try:
        while True:
            seqs.append(json.loads(await ws.get_message())["seq"])
    except ConnectionClosed as closed:
        return seqs, closed.reason.code


def _handshake(path: str, host: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
async def test_a_client_that_never_reads_is_cut_off_and_slows_no_one(
    fresh_database_url: str, workdir: Path
):
    # A long ping interval: the client never reads, so it never answers a ping,
    # and a loaded machine must not let the peer timeout (3 intervals) end it first.
    daemon = DaemonProcess(
        fresh_database_url, workdir, websocket={"queue_size": 16, "ping_interval_seconds": 300}
    ).start()
    try:
        async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
            event = await create_event(client, maxAttendees=10)
            path = f"/ws/events/{event['id']}"
            async with trio.open_nursery() as nursery:
                # The slow client: a tiny receive buffer, and it never reads.
                sock = trio.socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                await sock.connect(("127.0.0.1", daemon.port))
                slow = await trio_websocket.wrap_client_stream(
                    nursery, trio.SocketStream(sock), "127.0.0.1", path, message_queue_size=1
                )
                async with open_websocket_url(ws_url(daemon.url, path)) as fast:
                    await next_message(fast)
                    rss_before = _rss_kib(daemon.process.pid)
                    # Edits cannot be collapsed: 2,000 of ~3.4 KB, more than
                    # loopback's socket buffers hold (~3 MB).
                    for n in range(2000):
                        r = await client.patch(
                            f"/events/{event['id']}",
                            json={"description": f"edit {n} " + "x" * 3000},
                        )
                        assert r.status_code == 200
                        message = await next_message(fast)
                        assert (message["type"], message["seq"]) == ("eventUpdated", n + 2)
                    rss_after = _rss_kib(daemon.process.pid)
                # Bounded: the slow client's queue, not its backlog, is held.
                assert rss_after - rss_before < 30_000, (rss_before, rss_after)
                health = (await client.get("/health")).json()
                assert health["checks"]["websocket"]["connections"] == 0
                # Now it reads: what the socket held, then the close, 1013.
                with trio.fail_after(WAIT_SECONDS):
                    seqs, code = await _drain_until_closed(slow)
                assert code == 1013
                assert seqs[0] == 1
                assert seqs == sorted(seqs)
                assert len(seqs) < 2000
                nursery.cancel_scope.cancel()
    finally:
        assert daemon.stop() == 0, daemon.log()


@pytest.mark.slow
async def test_stopping_the_daemon_closes_streams_with_1001(fresh_database_url: str, workdir: Path):
    daemon = DaemonProcess(fresh_database_url, workdir).start()
    async with httpx.AsyncClient(base_url=daemon.url) as client:
        event = await create_event(client)
    async with (
        open_websocket_url(ws_url(daemon.url, "/ws")) as everything,
        open_websocket_url(ws_url(daemon.url, f"/ws/events/{event['id']}")) as one,
    ):
        await next_message(one)
        code = await trio.to_thread.run_sync(daemon.stop)
        for ws in (everything, one):
            with pytest.raises(ConnectionClosed) as closed, trio.fail_after(WAIT_SECONDS):
                await ws.get_message()
            assert closed.value.reason.code == 1001
    assert code == 0, daemon.log()


@pytest.mark.slow
async def test_a_dead_peer_is_dropped(fresh_database_url: str, workdir: Path):
    daemon = DaemonProcess(
        fresh_database_url, workdir, websocket={"ping_interval_seconds": 0.2}
    ).start()
    try:
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as raw:
            raw.sendall(_handshake("/ws", f"127.0.0.1:{daemon.port}"))
            # The peer never answers a ping: within a few intervals it is gone.
            with trio.fail_after(WAIT_SECONDS):
                received = b""
                while chunk := await trio.to_thread.run_sync(raw.recv, 65536):
                    received += chunk
            assert b" 101 " in received.split(b"\r\n")[0]
            assert b"\x89" in received  # at least one ping frame came first
        async with httpx.AsyncClient(base_url=daemon.url) as client:
            health = (await client.get("/health")).json()
        assert health["checks"]["websocket"]["connections"] == 0
    finally:
        assert daemon.stop() == 0, daemon.log()


async def test_refused_handshakes_with_bodies_never_stop_the_daemon(
    client: httpx.AsyncClient, daemon
):
    # hypercorn once answered a body on a refused websocket stream with a
    # second response, and the h11 error stopped the whole server.
    event = await create_event(client)
    host, port = daemon.url.removeprefix("http://").split(":")
    for n in range(30):
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            body = b"x" * n
            raw.sendall(
                f"GET /ws/events/{event['id']}?since=bad HTTP/1.1\r\nHost: {host}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert _closed_by_peer(raw)
        response = await refused_handshake(client, f"/ws/events/{event['id']}?since=bad")
        assert response.status_code == 400
    assert (await client.get("/health")).status_code == 200


async def test_a_burst_arrives_as_whole_messages_in_order(
    client: httpx.AsyncClient, daemon, database_url: str
):
    # A client that reads nothing while a burst of registrations lands: the
    # changes of one actor turn go out coalesced, and whatever the write
    # boundaries, every frame parses on its own, in seq order.
    event = await create_event(client, maxAttendees=100)
    attendees = await make_attendees(database_url, 60)
    raw = await RawClient.open(daemon.port, f"/ws/events/{event['id']}")
    with raw.sock:
        assert (await raw.message())["type"] == "snapshot"
        async with httpx.AsyncClient(base_url=daemon.url, timeout=60) as many:
            async with trio.open_nursery() as nursery:
                for attendee_id in attendees:
                    nursery.start_soon(register, many, event["id"], attendee_id)
        messages = [await raw.message() for _ in attendees]
    assert [m["seq"] for m in messages] == list(range(2, 62))
    assert [m["data"]["registeredCount"] for m in messages] == list(range(1, 61))


@pytest.mark.slow
async def test_a_client_that_answers_pings_outlives_the_peer_timeout(
    fresh_database_url: str, workdir: Path
):
    # Pings every 0.2 s, so a peer silent for 1 s is dropped: this one only
    # ever sends pongs, and after many timeouts' worth of pings it still gets
    # the news.
    daemon = DaemonProcess(
        fresh_database_url, workdir, websocket={"ping_interval_seconds": 0.2}
    ).start()
    try:
        async with httpx.AsyncClient(base_url=daemon.url) as client:
            event = await create_event(client)
            raw = await RawClient.open(daemon.port, f"/ws/events/{event['id']}")
            with raw.sock:
                raw.answer_pings = True
                assert (await raw.message())["type"] == "snapshot"
                with trio.fail_after(WAIT_SECONDS):
                    while raw.pings < 15:  # 3 s of pings: three peer timeouts
                        assert await raw.next_event() is not None, "dropped"
                person = await create_attendee(client)
                assert (await register(client, event["id"], person["id"])).status_code == 201
                assert (await raw.message())["seq"] == 2
    finally:
        assert daemon.stop() == 0, daemon.log()


async def test_a_client_ping_is_answered_between_messages(client: httpx.AsyncClient, daemon):
    event = await create_event(client)
    raw = await RawClient.open(daemon.port, f"/ws/events/{event['id']}")
    with raw.sock:
        assert (await raw.message())["type"] == "snapshot"
        await raw.send(Ping(payload=b"are you there"))
        with trio.fail_after(WAIT_SECONDS):
            while not isinstance(event_ := await raw.next_event(), Pong):
                assert event_ is not None, "closed"
        assert event_.payload == b"are you there"
        person = await create_attendee(client)
        assert (await register(client, event["id"], person["id"])).status_code == 201
        assert (await raw.message())["seq"] == 2


async def test_a_client_close_is_answered_and_its_subscription_ends(
    client: httpx.AsyncClient, daemon
):
    event = await create_event(client)
    before = await _connections(client)
    raw = await RawClient.open(daemon.port, f"/ws/events/{event['id']}")
    with raw.sock:
        await raw.message()
        assert await _connections(client) == before + 1
        await raw.send_close(4000)
        answer = await raw.until_closed()
        assert answer.code == 4000  # the close is echoed, as RFC 6455 asks
        assert await raw.sock.recv(1) == b""  # and then the server hangs up
    with trio.fail_after(WAIT_SECONDS):
        # The daemon's state, seen only through /health: polled.
        while await _connections(client) > before:  # noqa: ASYNC110
            await trio.sleep(0.05)


async def _connections(client: httpx.AsyncClient) -> int:
    health = (await client.get("/health")).json()
    return int(health["checks"]["websocket"]["connections"])


async def test_a_websocket_over_http2_is_refused(daemon):
    # The streams write frames straight to an HTTP/1.1 connection's socket,
    # which HTTP/2 (RFC 8441) does not have; and cleartext HTTP/2 is not
    # offered at all: the client's preface is answered, in HTTP/2, that
    # HTTP/1.1 is required. Nothing breaks.
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", daemon.port))
    with sock:
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        h2c.initiate_connection()
        h2c.send_headers(
            1,
            [
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "http"),
                (":path", "/ws"),
                (":authority", f"127.0.0.1:{daemon.port}"),
                ("sec-websocket-version", "13"),
            ],
        )
        await sock.send(h2c.data_to_send())
        events: list[Any] = []
        with trio.fail_after(WAIT_SECONDS):
            while data := await sock.recv(1 << 16):
                events += h2c.receive_data(data)
    assert not any(isinstance(e, h2.events.ResponseReceived) for e in events)
    ended = next(e for e in events if isinstance(e, h2.events.ConnectionTerminated))
    assert ended.error_code == h2.errors.ErrorCodes.HTTP_1_1_REQUIRED
    async with httpx.AsyncClient(base_url=daemon.url) as client:
        assert (await client.get("/health")).status_code == 200


async def test_a_patch_that_changes_nothing_is_not_broadcast(client: httpx.AsyncClient, daemon):
    event = await create_event(client)
    same = {k: event[k] for k in ("name", "description", "date", "durationMinutes",
                                  "location", "maxAttendees")}
    async with open_websocket_url(ws_url(daemon.url, f"/ws/events/{event['id']}")) as ws:
        assert (await next_message(ws))["type"] == "snapshot"
        response = await client.patch(f"/events/{event['id']}", json=same)
        assert response.status_code == 200, response.text
        assert response.json() == event  # no version, no updatedAt moved
        renamed = await client.patch(f"/events/{event['id']}", json={"name": "Renamed"})
        assert renamed.json()["version"] == event["version"] + 1
        message = await next_message(ws)  # the rename is the first change anyone hears of
        assert (message["type"], message["seq"]) == ("eventUpdated", event["version"] + 1)
