"""Connections are capped: in all, by client address, and a slow request head is cut off.

``server.max_connections`` and ``server.max_connections_per_client``: a
connection beyond either is answered ``503 unavailable`` and closed before
its request is read (a WebSocket handshake so refused before the upgrade).
``server.header_timeout_seconds``: a new connection's first request head is
due within it, so a client trickling its headers holds its slot only so long.

Rules of this file: the serve loop runs in this process on a free loopback
port, on trio's autojump clock; clients are plain sockets from loopback
addresses of their own (127.0.0.x). The last test starts the real daemon, to
read the counts in /health and /metrics. Every wait is bounded by
``trio.fail_after``.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from eventd.config import Config, ServerConfig
from tests.support import App, DaemonProcess, RawHttp, serving

TIMEOUT_SECONDS = 30
HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: eventd\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
GET = b"GET / HTTP/1.1\r\nHost: eventd\r\n\r\n"


async def answer_to(port: int, request: bytes, local_address: str = "127.0.0.1") -> bytes:
    """Everything the server sends back to ``request`` on a new connection, until it closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=local_address)
    async with stream:
        await stream.send_all(request)
        answer = b""
        with trio.fail_after(TIMEOUT_SECONDS):
            while chunk := await stream.receive_some():
                answer += chunk
    return answer


def assert_refused(answer: bytes, cap: str) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert headers["retry-after"] == "1"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (503, "unavailable")
    says = {"max_connections": "The server has", "max_connections_per_client": "This address has"}
    assert problem["detail"].startswith(says[cap])


async def held(port: int, local_address: str) -> RawHttp:
    """A keep-alive connection from ``local_address``, admitted (it has had an answer)."""
    conn = await RawHttp.open(port, local_address=local_address)
    assert (await conn.request("GET", "/"))[0] == 200
    return conn


async def test_a_client_over_its_cap_is_refused_and_others_are_not(
    autojump_clock: trio.testing.MockClock,
):
    config = Config(server=ServerConfig(max_connections_per_client=2))
    async with serving(App(), config) as served:
        first = await held(served.port, "127.0.0.1")
        second = await held(served.port, "127.0.0.1")
        assert_refused(await answer_to(served.port, GET), "max_connections_per_client")
        # A WebSocket handshake is refused before the upgrade.
        assert_refused(await answer_to(served.port, HANDSHAKE), "max_connections_per_client")
        await (await held(served.port, "127.0.0.2")).stream.aclose()
        async with second.stream:
            pass
        async with first.stream:
            # A connection that ends gives its slot back at once.
            ended = trio.current_time()
            await trio.testing.wait_all_tasks_blocked()
            again = await held(served.port, "127.0.0.1")
            assert trio.current_time() == ended
            await again.stream.aclose()
        statistics = served.limiter.statistics()
    assert statistics.refused == {"max_connections": 0, "max_connections_per_client": 2}


async def test_the_server_over_its_cap_refuses_everyone(autojump_clock: trio.testing.MockClock):
    config = Config(server=ServerConfig(max_connections=2))
    async with serving(App(), config) as served:
        first = await held(served.port, "127.0.0.1")
        second = await held(served.port, "127.0.0.2")
        async with first.stream, second.stream:
            assert_refused(await answer_to(served.port, GET, "127.0.0.3"), "max_connections")
            statistics = served.limiter.statistics()
    assert (statistics.open_connections, statistics.clients) == (2, 2)
    assert statistics.refused == {"max_connections": 1, "max_connections_per_client": 0}


@pytest.mark.parametrize("request_head", [GET, HANDSHAKE], ids=["request", "handshake"])
async def test_a_client_trickling_its_head_holds_its_slot_only_until_the_header_timeout(
    autojump_clock: trio.testing.MockClock, request_head: bytes
):
    # One byte a second, well within the read timeout (a minute): hypercorn
    # alone gave such a connection the keep-alive timeout.
    config = Config(server=ServerConfig(header_timeout_seconds=5, max_connections_per_client=1))
    async with serving(App(), config) as served:
        trickler = await trio.open_tcp_stream("127.0.0.1", served.port)
        opened = trio.current_time()
        async with trickler, trio.open_nursery() as nursery:

            async def trickle() -> None:
                for byte in request_head[:-4] + b"\r\nX-Slow: " + b"x" * 100:
                    try:
                        await trickler.send_all(bytes([byte]))
                    except trio.BrokenResourceError:  # closed by the server
                        return
                    await trio.sleep(1)

            nursery.start_soon(trickle)
            await trio.sleep(2.5)
            # Meanwhile it holds its client's one slot.
            assert_refused(await answer_to(served.port, GET), "max_connections_per_client")
            with trio.fail_after(TIMEOUT_SECONDS):
                try:
                    assert await trickler.receive_some() == b""  # closed, unanswered
                except trio.BrokenResourceError:  # reset: closed with a byte on its way
                    pass
            assert trio.current_time() - opened == pytest.approx(5)
        await (await held(served.port, "127.0.0.1")).stream.aclose()


async def test_the_header_timeout_is_for_the_first_head_only(
    autojump_clock: trio.testing.MockClock,
):
    # After an answer, an idle connection is the keep-alive timeout's.
    config = Config(server=ServerConfig(header_timeout_seconds=2, keep_alive_seconds=30))
    async with serving(App(), config) as served:
        conn = await held(served.port, "127.0.0.1")
        async with conn.stream:
            await trio.sleep(10)
            assert (await conn.request("GET", "/"))[0] == 200


async def test_the_daemon_counts_connections_in_health_and_metrics(
    fresh_database_url: str, workdir: Path
):
    daemon = DaemonProcess(
        fresh_database_url, workdir, server={"max_connections_per_client": 2}
    ).start()
    try:
        first = await held(daemon.port, "127.0.0.7")
        second = await held(daemon.port, "127.0.0.7")
        async with first.stream, second.stream:
            assert_refused(
                await answer_to(daemon.port, GET, "127.0.0.7"), "max_connections_per_client"
            )
            async with httpx.AsyncClient(base_url=daemon.url) as client:
                health = (await client.get("/health")).json()
                metrics = (await client.get("/metrics")).text
    finally:
        assert daemon.stop() == 0, daemon.log()
    connections = health["checks"]["connections"]
    assert connections["open"] == 3  # the two held, and the one asking
    assert connections["clients"] == 2
    assert (connections["max"], connections["maxPerClient"]) == (10_000, 2)
    assert (connections["refused"], connections["refusedPerClient"]) == (0, 1)
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    assert found[("eventd_http_connections", ())] == 3
    refused = "eventd_http_connections_refused_total"
    assert found[(refused, (("cap", "server.max_connections_per_client"),))] == 1
    assert found[(refused, (("cap", "server.max_connections"),))] == 0
