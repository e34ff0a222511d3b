"""The webhook deliverer against a real PostgreSQL and a real receiver on 127.0.0.1.

Rules of this file: time is trio's MockClock (:class:`Time`), running at the
real rate so the database and the sockets work as ever, and jumped by the
tests; the deliverer reads the wall clock through it, so backoff, the
10-second timeout and ``retry_hours`` are crossed by jumps, never waited for.
A test drives the deliverer a round at a time (``send_due``) and jumps only
between rounds or while the deliverer waits for the receiver, never while a
statement is in flight. Every test is bounded by ``TIMEOUT_SECONDS`` of real
time (the bound moves with each jump). Signatures are checked
with the ``standardwebhooks`` library's own ``Webhook.verify``. Messages are
queued the way a change queues them, through ``eventd_enqueue_webhook``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from standardwebhooks.webhooks import Webhook

from eventd.model import utc_now
from eventd.storage import webhooks
from eventd.storage.database import Database, open_database
from eventd.storage.migrations import apply_migrations
from eventd.storage.outbox import backoff_seconds
from eventd.webhooks.deliverer import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_MAX_SECONDS,
    TIMEOUT_SECONDS,
    WebhookDeliverer,
)
from tests.support import WebhookReceiver

TIMEOUT = 30  # real seconds: a hang, not slowness, is what it catches


class Time(trio.abc.Clock):
    """The test run's clock (a fixture that is a Clock is the run's clock): trio's MockClock
    at the real rate, whose jumps do not eat into the test's bound."""

    def __init__(self) -> None:
        self._mock = trio.testing.MockClock(rate=1.0)
        self._bound: trio.CancelScope | None = None

    def start_clock(self) -> None:
        self._mock.start_clock()

    def current_time(self) -> float:
        return self._mock.current_time()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return self._mock.deadline_to_sleep_time(deadline)

    @contextlib.contextmanager
    def bounded(self) -> Iterator[None]:
        with trio.fail_after(TIMEOUT) as self._bound:
            yield

    def jump(self, seconds: float) -> None:
        if self._bound is not None:
            self._bound.deadline += seconds
        self._mock.jump(seconds)


@pytest.fixture
def time() -> Time:
    return Time()


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[Database]:
    async with open_database(fresh_database_url, pool_size=4, timeout_seconds=10) as database:
        await apply_migrations(database)
        yield database


def wall_clock(time: Time) -> Callable[[], datetime]:
    """The wall clock as the MockClock moves it."""
    start, base = utc_now(), time.current_time()
    return lambda: start + timedelta(seconds=time.current_time() - base)


def deliverer(
    db: Database, time: Time, *, allow_private: bool = True, retry_hours: float = 72.0,
) -> WebhookDeliverer:
    return WebhookDeliverer(db, retry_hours=retry_hours, allow_private_targets=allow_private,
                            now=wall_clock(time))


async def add_endpoint(
    db: Database, url: str, types: list[str] | None = None
) -> tuple[uuid.UUID, str]:
    async with db.transaction() as conn:
        created = await webhooks.CreateEndpoint(url, types or ["*"], "test").run(conn)
    return created.endpoint.id, created.secret


async def queue(db: Database, n: int = 1, kind: str = "event.created") -> list[dict[str, Any]]:
    """Queue ``n`` changes of ``kind``, one transaction each; their data, in order."""
    sent = []
    for i in range(n):
        data = {"id": str(uuid.uuid4()), "n": i}
        await db.fetchval("SELECT eventd_enqueue_webhook($1, $2::json)", kind,
                          orjson.dumps(data).decode())
        sent.append(data)
    return sent


async def rows(db: Database) -> list[Any]:
    return await db.fetch(
        "SELECT id, endpoint_id, attempts, last_status, last_error, delivered_at, given_up_at,"
        " next_attempt_at FROM webhook_deliveries ORDER BY seq")


async def receiving(nursery: trio.Nursery, receiver: WebhookReceiver) -> WebhookReceiver:
    await nursery.start(receiver.serve)
    return receiver


@dataclasses.dataclass
class Endpoint:
    receiver: WebhookReceiver
    id: uuid.UUID
    secret: str


@contextlib.asynccontextmanager
async def endpoint(
    db: Database, time: Time, answers: list[int | None] | None = None, *, host: str = "127.0.0.1"
) -> AsyncIterator[Endpoint]:
    """A receiver answering ``answers`` (then 200) and an endpoint for everything pointing
    at it (through ``host``), within the test's bound; the receiver stops after the block."""
    with time.bounded():
        async with trio.open_nursery() as nursery:
            receiver = await receiving(nursery, WebhookReceiver(answers))
            endpoint_id, secret = await add_endpoint(
                db, receiver.url.replace("127.0.0.1", host))
            yield Endpoint(receiver, endpoint_id, secret)
            nursery.cancel_scope.cancel()


async def test_a_message_is_signed_per_standard_webhooks_and_verifies_with_its_library(
    db: Database, time: Time
) -> None:
    async with endpoint(db, time) as hook:
        receiver = hook.receiver
        secret = hook.secret
        [data] = await queue(db)
        hooks = deliverer(db, time)
        async with hooks.sending():
            assert await hooks.send_due() == 1
    [got] = receiver.received
    body = Webhook(secret).verify(got.body, got.headers)  # raises if the signature is wrong
    assert body["type"] == "event.created"
    assert body["data"] == data
    assert got.headers["content-type"] == "application/json"
    [row] = await rows(db)
    assert got.message_id == str(row["id"])
    assert (row["attempts"], row["last_status"], row["last_error"]) == (1, 200, None)
    assert row["delivered_at"] is not None
    with pytest.raises(Exception, match="signature"):
        Webhook(webhooks.make_secret()).verify(got.body, got.headers)  # another key: refused


async def test_a_500_is_retried_after_its_backoff_with_the_same_webhook_id(
    db: Database, time: Time
) -> None:
    async with endpoint(db, time, [500]) as hook:
        receiver = hook.receiver
        secret = hook.secret
        await queue(db)
        hooks = deliverer(db, time)
        async with hooks.sending():
            await hooks.send_due()
            [row] = await rows(db)
            assert (row["attempts"], row["last_status"]) == (1, 500)
            assert row["delivered_at"] is None
            assert await hooks.send_due() == 0  # not due yet: its backoff runs
            time.jump(BACKOFF_BASE_SECONDS * 1.5)  # the longest first backoff
            assert await hooks.send_due() == 1
    first, second = receiver.received
    assert first.message_id == second.message_id
    assert first.body == second.body
    Webhook(secret).verify(second.body, second.headers)
    [row] = await rows(db)
    assert (row["attempts"], row["last_status"], row["last_error"]) == (2, 200, None)
    assert hooks.statistics().outcomes == {"delivered": 1, "failed": 1, "gave_up": 0, "gone": 0}


async def test_an_endpoint_s_messages_go_in_order_and_wait_for_a_failing_one(
    db: Database, time: Time
) -> None:
    with time.bounded():
        async with trio.open_nursery() as nursery:
            failing = await receiving(nursery, WebhookReceiver([503]))
            other = await receiving(nursery, WebhookReceiver())
            await add_endpoint(db, failing.url)
            await add_endpoint(db, other.url)
            sent = await queue(db, 5)
            hooks = deliverer(db, time)
            async with hooks.sending():
                await hooks.send_due()
                # The first failed: the failing endpoint's later ones wait; the other's go.
                assert len(failing.received) == 1
                assert [d.json()["data"] for d in other.received] == sent
                time.jump(BACKOFF_BASE_SECONDS * 1.5)
                await hooks.send_due()
            nursery.cancel_scope.cancel()
    got = [d.json()["data"] for d in failing.received]
    assert got == [sent[0], *sent]  # the first twice, then the rest, in order
    assert all(r["delivered_at"] is not None for r in await rows(db))


async def test_410_disables_the_endpoint_and_its_messages_wait(
    db: Database, time: Time
) -> None:
    async with endpoint(db, time, [410]) as hook:
        receiver = hook.receiver
        endpoint_id = hook.id
        await queue(db, 2)
        hooks = deliverer(db, time)
        async with hooks.sending():
            await hooks.send_due()
            time.jump(BACKOFF_MAX_SECONDS)
            assert await hooks.send_due() == 0
            await queue(db)  # a change after: no message for a disabled endpoint
    assert len(receiver.received) == 1
    stored = await webhooks.get_endpoint(db, endpoint_id)
    assert stored is not None
    assert not stored.enabled
    assert stored.disabled_reason is not None
    assert "410" in stored.disabled_reason
    first, second = await rows(db)
    assert (first["attempts"], first["last_status"]) == (1, 410)
    assert first["delivered_at"] is None
    assert first["given_up_at"] is None  # pending: enabling the endpoint sends it again
    assert second["attempts"] == 0
    assert hooks.statistics().outcomes["gone"] == 1


async def test_an_attempt_without_an_answer_fails_after_its_timeout(
    db: Database, time: Time
) -> None:
    async with endpoint(db, time, [None]) as hook:
        receiver = hook.receiver
        await queue(db)
        hooks = deliverer(db, time)
        async with hooks.sending():
            async with trio.open_nursery() as sending:
                sending.start_soon(hooks.send_due)
                await receiver.wait_for(1)
                time.jump(TIMEOUT_SECONDS - 0.5)
                await trio.testing.wait_all_tasks_blocked()
                assert (await rows(db))[0]["attempts"] == 0  # still waiting
                time.jump(0.5)
        receiver.release.set()
    [row] = await rows(db)
    assert row["attempts"] == 1
    assert row["last_status"] is None
    assert f"within {TIMEOUT_SECONDS:g} s" in row["last_error"]


async def test_a_deliverer_stopped_mid_send_gives_the_endpoint_back(
    db: Database, time: Time
) -> None:
    async with endpoint(db, time, [None]) as hook:
        receiver = hook.receiver
        await queue(db)
        stopping, taking_over = deliverer(db, time), deliverer(db, time)
        async with stopping.sending(), trio.open_nursery() as sending:
            sending.start_soon(stopping.send_due)
            await receiver.wait_for(1)
            sending.cancel_scope.cancel()
        async with taking_over.sending():  # at once, not after the lease
            assert await taking_over.send_due() == 1
        receiver.release.set()
    first, again = receiver.received
    assert first.message_id == again.message_id
    assert (await rows(db))[0]["delivered_at"] is not None


async def test_a_message_is_given_up_after_retry_hours_and_the_next_one_goes(
    db: Database, time: Time
) -> None:
    async with endpoint(db, time, [500, 500]) as hook:
        receiver = hook.receiver
        sent = await queue(db, 2)
        hooks = deliverer(db, time, retry_hours=1)
        async with hooks.sending():
            await hooks.send_due()
            time.jump(3600)  # past retry_hours: its next failure is its last
            await hooks.send_due()
    assert [d.json()["data"] for d in receiver.received] == [sent[0], sent[0], sent[1]]
    first, second = await rows(db)
    assert first["given_up_at"] is not None
    assert first["delivered_at"] is None
    assert second["delivered_at"] is not None
    assert hooks.statistics().outcomes["gave_up"] == 1


async def test_a_redirect_is_not_followed(
    db: Database, time: Time
) -> None:
    async with endpoint(db, time, [302]) as hook:
        receiver = hook.receiver
        await queue(db)
        hooks = deliverer(db, time)
        async with hooks.sending():
            await hooks.send_due()
    assert len(receiver.received) == 1
    [row] = await rows(db)
    assert row["last_status"] == 302
    assert "redirect" in row["last_error"]
    assert row["delivered_at"] is None


async def test_a_private_target_is_refused_again_at_delivery(
    db: Database, time: Time
) -> None:
    # Allowed when it was added; the deliverer's own check refuses it now.
    async with endpoint(db, time, host="localhost") as hook:
        receiver = hook.receiver
        await queue(db)
        hooks = deliverer(db, time, allow_private=False)
        async with hooks.sending():
            await hooks.send_due()
    assert receiver.received == []
    [row] = await rows(db)
    assert "loopback" in row["last_error"]
    assert row["attempts"] == 1


async def test_two_deliverers_on_one_database_never_send_an_endpoint_s_messages_at_once(
    db: Database, fresh_database_url: str, time: Time
) -> None:
    receivers = [WebhookReceiver() for _ in range(4)]
    with time.bounded():
        async with open_database(fresh_database_url, pool_size=4, timeout_seconds=10) as db2, \
                trio.open_nursery() as nursery:
            for receiver in receivers:
                await nursery.start(receiver.serve)
                await add_endpoint(db, receiver.url)
            sent = await queue(db, 30)
            one, two = deliverer(db, time), deliverer(db2, time)
            done = {"one": 0, "two": 0}

            async def drain(name: str, hooks: WebhookDeliverer) -> None:
                async with hooks.sending():
                    while any(r["delivered_at"] is None for r in await rows(db)):
                        done[name] += await hooks.send_due()

            async with trio.open_nursery() as both:
                both.start_soon(drain, "one", one)
                both.start_soon(drain, "two", two)
            nursery.cancel_scope.cancel()
    for receiver in receivers:
        assert receiver.most_in_flight == 1
        assert [d.json()["data"] for d in receiver.received] == sent  # each once, in order
    assert done["one"] + done["two"] == 4 * 30


@pytest.mark.parametrize("attempts", [1, 2, 5, 12, 40])
def test_backoff_doubles_with_jitter_up_to_its_cap(attempts: int) -> None:
    expected = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
    delays = [backoff_seconds(attempts, BACKOFF_BASE_SECONDS, BACKOFF_MAX_SECONDS)
              for _ in range(200)]
    assert all(0.5 * expected <= d < 1.5 * expected for d in delays)
    assert len(set(delays)) > 1  # spread, not one moment for every failed message
