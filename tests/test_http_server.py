"""hypercorn as eventd runs it (eventd.http.server, eventd.http.connection), over raw sockets.

A response goes out in one write, and hypercorn's keep-alive task is one
timer per connection; these tests hold the behaviour both must keep: framing
on a reused connection (bodies, no bodies, HEAD, large files), idle
connections closed after the keep-alive timeout, busy and active ones not.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import h11
import httpx
import trio

from eventd.config import Config
from eventd.http.server import SHUTDOWN_GRACE_SECONDS, hypercorn_config
from tests.support import DaemonProcess

KEEP_ALIVE_SECONDS = 3  # server.keep_alive_seconds of the keep-alive test's daemon


class RawHttp:
    """One keep-alive HTTP/1.1 connection, framed by h11 on the client side."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, daemon: DaemonProcess) -> RawHttp:
        return cls(await trio.open_tcp_stream("127.0.0.1", daemon.port))

    async def request(
        self, method: str, target: str, body: bytes = b"", content_type: str = "application/json"
    ) -> tuple[int, dict[str, str], bytes]:
        if self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        headers = [("Host", "eventd"), ("Content-Length", str(len(body)))]
        if body:
            headers.append(("Content-Type", content_type))
        data = self.h11.send(h11.Request(method=method, target=target, headers=headers))
        data += self.h11.send(h11.Data(data=body)) if body else b""
        await self.stream.send_all(data + self.h11.send(h11.EndOfMessage()))
        status, response_headers, content = 0, {}, b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.stream.receive_some())
            elif isinstance(event, h11.Response):
                status = event.status_code
                response_headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                content += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, response_headers, content

    async def closed_by_peer(self) -> bool:
        """True once the daemon closes the connection (EOF), without our sending anything."""
        return await self.stream.receive_some() == b""


async def test_one_connection_carries_every_kind_of_response(daemon: DaemonProcess):
    conn = await RawHttp.open(daemon)
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
        conn = await RawHttp.open(daemon)
        async with conn.stream:
            assert (await conn.request("GET", "/health"))[0] == 200
            started = trio.current_time()
            with trio.fail_after(KEEP_ALIVE_SECONDS + 3):
                assert await conn.closed_by_peer()
            assert trio.current_time() - started >= KEEP_ALIVE_SECONDS - 0.5

    async def active() -> None:
        # A request every 2 s: each answer moves the deadline on.
        conn = await RawHttp.open(daemon)
        async with conn.stream:
            for _ in range(4):
                assert (await conn.request("GET", "/health"))[0] == 200
                await trio.sleep(2)
            assert (await conn.request("GET", "/health"))[0] == 200

    async def busy() -> None:
        # One request whose body takes longer than the keep-alive timeout to
        # come: the connection is busy, not idle, and gets its answer.
        conn = await RawHttp.open(daemon)
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


def test_idle_connections_outlive_the_clients_own_keep_alive() -> None:
    """By default the client lets an idle connection go first (hypercorn_config)."""
    assert hypercorn_config(Config()).keep_alive_timeout > httpx.Limits().keepalive_expiry


async def test_a_connection_reused_as_late_as_a_client_would_is_answered(daemon: DaemonProcess):
    """httpx reuses a connection idle for up to 5 s: the daemon must still have it open.

    With the server's keep-alive at the same 5 s, a request sent on such a
    connection met a server closing it, and was reset.
    """
    conn = await RawHttp.open(daemon)
    async with conn.stream:
        assert (await conn.request("GET", "/health"))[0] == 200
        await trio.sleep(httpx.Limits().keepalive_expiry + 0.5)
        assert (await conn.request("GET", "/health"))[0] == 200


async def test_stop_closes_idle_connections_at_once(fresh_database_url: str, workdir):
    daemon = DaemonProcess(fresh_database_url, workdir).start()
    try:
        conn = await RawHttp.open(daemon)
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
