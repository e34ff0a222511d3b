"""hypercorn as eventd runs it (eventd.http.server, eventd.http.connection), over raw sockets.

Framing on a reused connection (bodies, no bodies, HEAD, large files); idle
connections closed after the keep-alive timeout, busy and active ones not,
idle ones at once on a stop; an error on one connection kept to it; cleartext
HTTP/2 refused (its preface told, in HTTP/2, to use HTTP/1.1; an ``Upgrade:
h2c`` served over HTTP/1.1). Tests of
the serve loop alone run it in this process on a free loopback port, serving
a small ASGI app, on trio's autojump clock; the rest start the real daemon.
Every wait is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
import trio
import trio.testing
from h2.errors import ErrorCodes
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from eventd.config import Config, ServerConfig, WebsocketConfig
from eventd.http.server import SHUTDOWN_GRACE_SECONDS, hypercorn_config
from tests.support import (
    App,
    DaemonProcess,
    RawHttp,
    Receive,
    Send,
    answer_ok,
    listening,
    serving,
)

KEEP_ALIVE_SECONDS = 3  # server.keep_alive_seconds of the keep-alive tests' servers
TIMEOUT_SECONDS = 10


async def test_one_connection_carries_every_kind_of_response(daemon: DaemonProcess):
    conn = await RawHttp.open(daemon.port)
    async with conn.stream:
        event = {"name": "Framing", "date": "2099-03-01T10:00:00Z", "maxAttendees": 5,
                 "location": f"Framing {uuid.uuid4().hex}"}
        status, headers, body = await conn.request("POST", "/events", json.dumps(event).encode())
        assert status == 201
        assert int(headers["content-length"]) == len(body)
        event_id = json.loads(body)["id"]
        status, _, body = await conn.request("HEAD", f"/events/{event_id}")
        assert (status, body) == (200, b"")
        status, _, body = await conn.request("GET", "/events/not-an-id")
        assert status == 404
        assert json.loads(body)["code"] == "not_found"
        status, headers, body = await conn.request("GET", "/api/assets/swagger-ui-bundle.js")
        assert status == 200
        assert len(body) == int(headers["content-length"]) > 500_000  # over a socket buffer
        status, _, body = await conn.request("DELETE", f"/events/{event_id}")
        assert (status, body) == (204, b"")
        status, _, body = await conn.request("GET", f"/events/{event_id}")
        assert status == 404


async def test_keep_alive_closes_idle_connections_only(fresh_database_url: str, workdir: Path):
    daemon = DaemonProcess(
        fresh_database_url, workdir, server={"keep_alive_seconds": KEEP_ALIVE_SECONDS}
    ).start()

    async def idle() -> None:
        conn = await RawHttp.open(daemon.port)
        async with conn.stream:
            assert (await conn.request("GET", "/health"))[0] == 200
            started = trio.current_time()
            with trio.fail_after(KEEP_ALIVE_SECONDS + 3):
                assert await conn.closed_by_peer()
            assert trio.current_time() - started >= KEEP_ALIVE_SECONDS - 0.5

    async def active() -> None:
        # A request every 2 s: each answer moves the deadline on.
        conn = await RawHttp.open(daemon.port)
        async with conn.stream:
            for _ in range(4):
                assert (await conn.request("GET", "/health"))[0] == 200
                await trio.sleep(2)
            assert (await conn.request("GET", "/health"))[0] == 200

    async def busy() -> None:
        # One request whose body takes longer than the keep-alive timeout to
        # come: the connection is busy, not idle, and gets its answer.
        conn = await RawHttp.open(daemon.port)
        async with conn.stream:
            body = json.dumps({"name": "Slow", "email": f"{uuid.uuid4().hex}@slow.org"}).encode()
            head = (b"POST /attendees HTTP/1.1\r\nHost: eventd\r\nContent-Type: application/json"
                    b"\r\nContent-Length: %d\r\n\r\n" % len(body))
            await conn.stream.send_all(head + body[:5])
            await trio.sleep(KEEP_ALIVE_SECONDS + 1)
            await conn.stream.send_all(body[5:])
            answer = await conn.stream.receive_some()
            assert answer.startswith(b"HTTP/1.1 201 "), answer

    try:
        async with trio.open_nursery() as nursery:
            for test in (idle, active, busy):
                nursery.start_soon(test)
    finally:
        assert daemon.stop() == 0, daemon.log()


async def test_stop_closes_idle_connections_at_once(fresh_database_url: str, workdir):
    daemon = DaemonProcess(fresh_database_url, workdir).start()
    try:
        conn = await RawHttp.open(daemon.port)
        async with conn.stream:
            assert (await conn.request("GET", "/health"))[0] == 200
            started = trio.current_time()
            await trio.to_thread.run_sync(daemon.process.send_signal, 15)
            with trio.fail_after(SHUTDOWN_GRACE_SECONDS):
                assert await conn.closed_by_peer()
            assert trio.current_time() - started < KEEP_ALIVE_SECONDS
        assert await trio.to_thread.run_sync(daemon.process.wait, 10) == 0, daemon.log()
    finally:
        daemon.stop()


# --- the serve loop alone, in this process ------------------------------------------


async def test_an_idle_connection_is_closed_at_the_keep_alive_timeout(
    autojump_clock: trio.testing.MockClock,
):
    config = Config(server=ServerConfig(keep_alive_seconds=KEEP_ALIVE_SECONDS))
    async with serving(App(), config) as served:
        conn = await RawHttp.open(served.port)
        async with conn.stream:
            assert (await conn.request("GET", "/"))[::2] == (200, b"ok")
            answered = trio.current_time()
            with trio.fail_after(TIMEOUT_SECONDS):
                assert await conn.closed_by_peer()
            assert trio.current_time() - answered == pytest.approx(KEEP_ALIVE_SECONDS)


async def test_the_keep_alive_counts_from_a_connections_last_answer(
    autojump_clock: trio.testing.MockClock,
):
    config = Config(server=ServerConfig(keep_alive_seconds=KEEP_ALIVE_SECONDS))
    async with serving(App(), config) as served:
        conn = await RawHttp.open(served.port)
        async with conn.stream:
            for _ in range(3):  # each within the keep-alive of the one before
                assert (await conn.request("GET", "/"))[0] == 200
                await trio.sleep(KEEP_ALIVE_SECONDS - 1)
            assert (await conn.request("GET", "/"))[0] == 200
            answered = trio.current_time()
            with trio.fail_after(TIMEOUT_SECONDS):
                assert await conn.closed_by_peer()
            assert trio.current_time() - answered == pytest.approx(KEEP_ALIVE_SECONDS)


async def test_a_request_outlasting_the_keep_alive_is_answered(
    autojump_clock: trio.testing.MockClock,
):
    async def slow(receive: Receive, send: Send) -> None:
        await trio.sleep(2 * KEEP_ALIVE_SECONDS)
        await answer_ok(receive, send)

    config = Config(server=ServerConfig(keep_alive_seconds=KEEP_ALIVE_SECONDS))
    async with serving(App(http=slow), config) as served:
        conn = await RawHttp.open(served.port)
        async with conn.stream:
            for _ in range(2):
                with trio.fail_after(TIMEOUT_SECONDS):
                    assert (await conn.request("GET", "/"))[::2] == (200, b"ok")


async def test_an_idle_connection_is_closed_at_the_peer_timeout_when_that_comes_first(
    autojump_clock: trio.testing.MockClock,
):
    # Pings every 0.2 s: a peer silent for 1 s is given up, an idle client too.
    config = Config(websocket=WebsocketConfig(ping_interval_seconds=0.2))
    peer_timeout_seconds = hypercorn_config(config).read_timeout
    assert peer_timeout_seconds < config.server.keep_alive_seconds
    async with serving(App(), config) as served:
        conn = await RawHttp.open(served.port)
        async with conn.stream:
            assert (await conn.request("GET", "/"))[0] == 200
            answered = trio.current_time()
            with trio.fail_after(TIMEOUT_SECONDS):
                assert await conn.closed_by_peer()
            assert trio.current_time() - answered == pytest.approx(peer_timeout_seconds)


async def test_by_default_a_connection_reused_as_late_as_a_client_would_is_answered(
    autojump_clock: trio.testing.MockClock,
):
    """httpx reuses a connection idle for up to 5 s: the server must still have it open.

    With the server's keep-alive at the same 5 s, a request sent on such a
    connection met a server closing it, and was reset.
    """
    async with serving(App()) as served:
        conn = await RawHttp.open(served.port)
        async with conn.stream:
            assert (await conn.request("GET", "/"))[0] == 200
            await trio.sleep(httpx.Limits().keepalive_expiry + 0.5)
            assert (await conn.request("GET", "/"))[0] == 200


async def test_a_stop_closes_idle_connections_at_once(autojump_clock: trio.testing.MockClock):
    async with serving(App()) as served:
        conn = await RawHttp.open(served.port)
        async with conn.stream:
            assert (await conn.request("GET", "/"))[0] == 200
            stopped = trio.current_time()
            served.stop.set()
            with trio.fail_after(TIMEOUT_SECONDS):
                assert await conn.closed_by_peer()
            assert trio.current_time() == stopped  # no timer ran out first


class BodyNobodyTakes:
    """A request whose app has stopped taking messages when its body comes.

    The app closes its end of hypercorn's queue and waits; hypercorn's reader,
    handing the body on, fails with ``trio.BrokenResourceError`` in the
    connection's task: an error on one connection, as any bug there would be.
    Every later request is answered ``ok``.
    """

    def __init__(self) -> None:
        self.app = App(http=self._hang_up)
        self._hung_up = trio.Event()

    async def _hang_up(self, receive: Receive, send: Send) -> None:
        if self._hung_up.is_set():
            await answer_ok(receive, send)
            return
        receive.__self__.close()  # type: ignore[attr-defined]  # hypercorn's channel
        self._hung_up.set()
        await trio.sleep_forever()

    async def send(self, port: int) -> bytes:
        """The request, its body once the app has hung up; what came back before the end."""
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"POST / HTTP/1.1\r\nHost: eventd\r\nContent-Length: 4\r\n\r\n")
            answer = b""
            with trio.fail_after(TIMEOUT_SECONDS):
                await self._hung_up.wait()
                await stream.send_all(b"body")
                try:
                    while chunk := await stream.receive_some():
                        answer += chunk
                except trio.BrokenResourceError:  # reset
                    pass
        return answer


async def test_hypercorns_own_serve_loop_lets_one_connections_error_stop_it():
    """Why eventd serves with a loop of its own: in hypercorn's, that error stops the server."""
    hc, sockets = listening(Config())
    port = sockets.insecure_sockets[0].getsockname()[1]
    request = BodyNobodyTakes()

    async def serve_with_hypercorn() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: worker_serve(
                    wrap_app(request.app, hc.wsgi_max_body_size, None),
                    hc,
                    sockets=sockets,
                    shutdown_trigger=trio.sleep_forever,
                    task_status=task_status,
                )
            )
            await request.send(port)
            await trio.sleep_forever()  # until the server fails

    try:
        with pytest.raises(BaseExceptionGroup) as stopped, trio.fail_after(TIMEOUT_SECONDS):
            await serve_with_hypercorn()
        assert stopped.value.subgroup(trio.BrokenResourceError) is not None
    finally:
        for sock in sockets.insecure_sockets:
            sock.close()


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG], ids=["info", "debug"])
async def test_an_error_on_one_connection_is_kept_to_it_and_logged_once_briefly(
    caplog: pytest.LogCaptureFixture, level: int
):
    caplog.set_level(level)
    request = BodyNobodyTakes()
    async with serving(request.app) as served:
        assert await request.send(served.port) == b""  # closed, unanswered
        conn = await RawHttp.open(served.port)
        async with conn.stream:  # every other connection is served as before
            assert (await conn.request("GET", "/ok"))[0] == 200
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelname) for r in logged] == [("eventd.http.server", "WARNING")]
    assert "BrokenResourceError" in logged[0].getMessage()
    assert "\n" not in logged[0].getMessage()
    # The traceback only when logging at debug.
    assert (logged[0].exc_info is not None) == (level == logging.DEBUG)


# --- cleartext HTTP/2 is not offered ----------------------------------------------


async def refuse_early(receive: Receive, send: Send) -> None:
    """What eventd does with a body over its limit: 413 at once, the rest left unread."""
    await receive()
    await send({
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-length", b"0"), (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": b""})


async def post_over_http2(port: int, body_bytes: int) -> list[h2.events.Event]:
    """A prior-knowledge HTTP/2 POST, sent at once as far as flow control goes; what came back."""
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", port))
    with sock:
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        h2c.initiate_connection()
        h2c.send_headers(1, [(":method", "POST"), (":path", "/attendees"), (":scheme", "http"),
                             (":authority", "eventd"), ("content-type", "application/json"),
                             ("content-length", str(body_bytes))])
        body = memoryview(bytes(body_bytes))
        while body and (window := min(h2c.local_flow_control_window(1), 16384)):
            h2c.send_data(1, body[:window].tobytes())
            body = body[window:]
        await sock.send(h2c.data_to_send())
        events: list[h2.events.Event] = []
        with trio.fail_after(TIMEOUT_SECONDS):
            while data := await sock.recv(1 << 16):
                events += h2c.receive_data(data)
    return events


def told_to_use_http11(events: list[h2.events.Event]) -> bool:
    ended = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    answered = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    return not answered and [e.error_code for e in ended] == [ErrorCodes.HTTP_1_1_REQUIRED]


async def test_the_http2_preface_is_answered_that_http11_is_required(
    caplog: pytest.LogCaptureFixture,
):
    # hypercorn's h2c dropped such a connection with a KeyError in its
    # HTTP/2 protocol (the app answered 413 while the body still came).
    async with serving(App(http=refuse_early)) as served:
        assert told_to_use_http11(await post_over_http2(served.port, 200_000))
        conn = await RawHttp.open(served.port)
        async with conn.stream:  # served over HTTP/1.1 as before
            assert (await conn.request("POST", "/", b"x" * 200_000))[0] == 413
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_an_h2c_upgrade_is_served_over_http11():
    async with serving(App()) as served:
        stream = await trio.open_tcp_stream("127.0.0.1", served.port)
        async with stream:
            request = (b"GET / HTTP/1.1\r\nHost: eventd\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                       b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
            answers = b""
            for _ in range(2):  # and the connection stays HTTP/1.1
                await stream.send_all(request)
                with trio.fail_after(TIMEOUT_SECONDS):
                    while not answers.endswith(b"ok"):
                        answers += await stream.receive_some()
                assert answers.startswith(b"HTTP/1.1 200 "), answers
                answers = b""


async def test_the_daemon_refuses_cleartext_http2_without_an_error(daemon: DaemonProcess):
    assert told_to_use_http11(await post_over_http2(daemon.port, 200_000))
    async with httpx.AsyncClient(base_url=daemon.url) as client:
        assert (await client.get("/health")).status_code == 200
    assert "KeyError" not in daemon.log()
