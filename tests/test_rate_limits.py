"""Per-client limits: the token bucket on trio's MockClock, the connection counts, then a
real daemon (requests and WebSocket handshakes).

The daemon listens on 127.0.0.1; clients are told apart by their source
address, so a second client binds 127.0.0.2 (any 127/8 address is loopback on
Linux). No test asserts how long anything took.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
import trio
import trio.testing

from eventd.http.idempotency import REPLAYED_HEADER
from eventd.http.rate_limits import ConnectionLimiter, ConnectionLimiterStatistics, RateLimiter
from tests.conftest import assert_problem
from tests.support import DaemonProcess

# --- the bucket -------------------------------------------------------------------


async def test_a_burst_of_one_seconds_worth_then_refusals(mock_clock: trio.testing.MockClock):
    limiter = RateLimiter(5)
    assert [limiter.take("a") for _ in range(5)] == [0] * 5
    assert limiter.take("a") == 1
    assert limiter.take("a") == 1  # refused requests take nothing, and wait no longer


async def test_tokens_come_back_at_the_rate(mock_clock: trio.testing.MockClock):
    limiter = RateLimiter(5)
    for _ in range(5):
        limiter.take("a")
    mock_clock.jump(0.19)
    assert limiter.take("a") == 1
    mock_clock.jump(0.02)  # 0.21 s: one token back
    assert limiter.take("a") == 0
    assert limiter.take("a") == 1
    mock_clock.jump(10)  # refills to the burst, no further
    assert [limiter.take("a") for _ in range(6)] == [0] * 5 + [1]


async def test_retry_after_is_whole_seconds_until_a_token(mock_clock: trio.testing.MockClock):
    limiter = RateLimiter(0.25)  # one request every four seconds; a burst of one
    assert limiter.take("a") == 0
    assert limiter.take("a") == 4
    mock_clock.jump(2.5)
    assert limiter.take("a") == 2  # 1.5 s to go, rounded up
    mock_clock.jump(1.5)
    assert limiter.take("a") == 0


async def test_clients_have_buckets_of_their_own(mock_clock: trio.testing.MockClock):
    limiter = RateLimiter(1)
    assert limiter.take("a") == 0
    assert limiter.take("a") == 1
    assert limiter.take("b") == 0


async def test_refilled_buckets_are_forgotten(mock_clock: trio.testing.MockClock):
    limiter = RateLimiter(2)  # burst 2, refilled in one second
    for client in ("a", "b", "c"):
        limiter.take(client)
    mock_clock.jump(0.5)
    limiter.take("b")
    assert limiter.statistics().tracked_clients == 3
    mock_clock.jump(0.6)  # a and c idle 1.1 s: full again; b idle 0.6 s
    limiter.take("d")
    assert limiter.statistics().tracked_clients == 2
    mock_clock.jump(5)
    limiter.take("e")
    assert limiter.statistics().tracked_clients == 1


async def test_the_number_of_clients_is_capped(mock_clock: trio.testing.MockClock):
    limiter = RateLimiter(1, max_clients=3)
    for client in ("a", "b", "c", "d"):
        assert limiter.take(client) == 0
    assert limiter.statistics().tracked_clients == 3
    # "a", least recently seen, was forgotten: a fresh burst; "d" was not.
    assert limiter.take("a") == 0
    assert limiter.take("d") == 1


def test_a_rate_must_be_positive():
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(0)


# --- the connection counts ----------------------------------------------------------


def test_connections_are_capped_per_client_and_in_all():
    limiter = ConnectionLimiter(max_connections=3, max_connections_per_client=2)
    assert [limiter.open_nowait("a") for _ in range(3)] == [None, None,
                                                            "max_connections_per_client"]
    assert limiter.open_nowait("b") is None
    assert limiter.open_nowait("c") == "max_connections"
    limiter.close("a")
    assert limiter.open_nowait("c") is None  # a slot given back is anyone's
    assert limiter.statistics() == ConnectionLimiterStatistics(
        open_connections=3,
        clients=3,
        max_connections=3,
        max_connections_per_client=2,
        refused={"max_connections": 1, "max_connections_per_client": 1},
    )
    for client in ("a", "b", "c"):
        limiter.close(client)
    assert (limiter.statistics().open_connections, limiter.statistics().clients) == (0, 0)


def test_a_cap_of_0_is_no_cap():
    limiter = ConnectionLimiter(max_connections=0, max_connections_per_client=0)
    assert all(limiter.open_nowait("a") is None for _ in range(10_000))


# --- a daemon with a limit ------------------------------------------------------------

# One request every ten seconds (a burst of one): a client that was just refused
# stays refused for seconds, however slowly this machine runs the next request.
RATE = 0.1
REQUESTS_AT_ONCE = 5


@pytest.fixture(scope="module")
def limited(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    daemon = DaemonProcess(
        database_url,
        tmp_path_factory.mktemp("rate"),
        limits={"requests_per_second_per_client": RATE},
    ).start()
    yield daemon.url
    assert daemon.stop() == 0, daemon.log()


def client_from(url: str, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=30)


async def exhaust(client: httpx.AsyncClient) -> httpx.Response:
    """Spend the client's burst: several requests at once, of which some are refused."""
    answers: list[httpx.Response] = []

    async def one() -> None:
        answers.append(await client.get("/events", params={"limit": 1}))

    async with trio.open_nursery() as nursery:
        for _ in range(REQUESTS_AT_ONCE):
            nursery.start_soon(one)
    refused = [a for a in answers if a.status_code == 429]
    assert refused, [a.status_code for a in answers]
    assert {a.status_code for a in answers} <= {200, 429}
    return refused[0]


async def test_over_the_rate_is_429_with_retry_after(limited: str):
    async with client_from(limited, "127.0.0.1") as client:
        refused = await exhaust(client)
    problem = assert_problem(refused, 429, "rate_limited")
    assert "per second" in problem["detail"]
    retry_after = refused.headers["retry-after"]
    assert retry_after.isdigit()
    assert int(retry_after) >= 1


async def test_health_is_exempt(limited: str):
    async with client_from(limited, "127.0.0.4") as client:
        await exhaust(client)
        for _ in range(REQUESTS_AT_ONCE):
            assert (await client.get("/health")).status_code == 200


async def test_other_clients_are_not_affected(limited: str):
    async with client_from(limited, "127.0.0.1") as busy, client_from(limited, "127.0.0.2") as calm:
        await exhaust(busy)
        assert (await calm.get("/events", params={"limit": 1})).status_code == 200


async def test_a_refused_request_claims_no_idempotency_key(limited: str):
    body = {"name": "Ada", "email": f"ada.{uuid.uuid4().hex[:12]}@example.com"}
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    async with client_from(limited, "127.0.0.1") as busy:
        await exhaust(busy)
        refused = await busy.post("/attendees", json=body, headers=headers)
    assert_problem(refused, 429, "rate_limited")
    async with client_from(limited, "127.0.0.3") as other:
        created = await other.post("/attendees", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert REPLAYED_HEADER not in created.headers


async def test_websocket_handshakes_are_limited_like_requests(limited: str):
    # Each handshake once went through (20 × 101): now it takes a token like a
    # request, and one over the rate is refused before the upgrade.
    port = int(limited.rsplit(":", 1)[1])
    handshake = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    answers: list[bytes] = []

    async def shake() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port, local_address="127.0.0.9")
        async with stream:
            await stream.send_all(handshake)
            answer = b""
            with trio.fail_after(30):
                while b"\r\n\r\n" not in answer:
                    answer += await stream.receive_some()
                if answer.startswith(b"HTTP/1.1 429 "):  # and its problem document, to the end
                    while chunk := await stream.receive_some():
                        answer += chunk
            answers.append(answer)

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(shake)
    statuses = sorted(int(answer.split(b" ", 2)[1]) for answer in answers)
    assert statuses == [101] + [429] * 19  # a burst of one, and ten seconds to the next token
    refused = next(answer for answer in answers if answer.startswith(b"HTTP/1.1 429 "))
    head, _, body = refused.partition(b"\r\n\r\n")
    assert b"\r\nretry-after: " in head.lower()
    assert json.loads(body)["code"] == "rate_limited"
