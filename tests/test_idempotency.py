"""Idempotency-Key on every POST: replay, refusal, concurrency, restarts, expiry, leases.

Most tests use the shared daemon; those that restart a daemon, shorten its
deadline or guard its admin routes start their own. The database is read and
aged with plain SQL (``idempotency_keys``), since no test can wait 24 hours.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio

from eventd.errors import (
    EventdError,
    EventFull,
    FieldError,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from eventd.http.context import json_response
from eventd.http.idempotency import REPLAYED_HEADER, TTL_SECONDS, request_fingerprint, run_claimed
from eventd.storage import idempotency as store
from eventd.storage.database import Database, open_database
from eventd.storage.migrations import apply_migrations
from tests.conftest import (
    assert_problem,
    create_attendee,
    create_event,
    future,
    unique_location,
)
from tests.support import DaemonProcess, run_sql, scratch_database

HEADER = "Idempotency-Key"


def new_key() -> str:
    return str(uuid.uuid4())


async def sql(url: str, query: str, *args: Any) -> list[Any]:
    return await trio.to_thread.run_sync(lambda: run_sql(url, query, *args))


async def age_key(url: str, key: str, hours: float) -> None:
    """Make the key's answer ``hours`` old, as if given that long ago."""
    await sql(
        url,
        "UPDATE idempotency_keys SET created_at = now() - make_interval(hours => $2),"
        " claimed_at = now() - make_interval(hours => $2) WHERE key = $1",
        key,
        float(hours),
    )


def event_body() -> dict[str, Any]:
    return {"name": "Keyed", "date": future(), "location": unique_location(), "maxAttendees": 5}


def attendee_body() -> dict[str, Any]:
    return {"name": "Ada", "email": f"ada.{uuid.uuid4().hex[:12]}@example.com"}


async def post(
    client: httpx.AsyncClient, path: str, body: Any, key: str | None, **headers: str
) -> httpx.Response:
    if key is not None:
        headers[HEADER] = key
    return await client.post(path, json=body, headers=headers)


def assert_replay_of(replay: httpx.Response, first: httpx.Response) -> None:
    assert replay.headers.get(REPLAYED_HEADER) == "true", replay.text
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    assert replay.headers["content-type"] == first.headers["content-type"]
    assert replay.headers.get("location") == first.headers.get("location")


# --- replay -------------------------------------------------------------------------


async def body_for(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    if path == "/events":
        return event_body()
    if path == "/attendees":
        return attendee_body()
    event = await create_event(client)
    attendee = await create_attendee(client)
    return {"eventId": event["id"], "attendeeId": attendee["id"]}


@pytest.mark.parametrize("path", ["/events", "/attendees", "/registrations"])
async def test_a_retry_gets_the_first_answer_again(client: httpx.AsyncClient, path: str):
    body = await body_for(client, path)
    key = new_key()
    first = await post(client, path, body, key)
    assert first.status_code == 201, first.text
    assert REPLAYED_HEADER not in first.headers
    assert first.headers["location"] == f"{path}/{first.json()['id']}"
    for _ in range(2):
        assert_replay_of(await post(client, path, body, key), first)


async def test_a_replayed_event_was_created_once(client: httpx.AsyncClient):
    body = event_body()
    key = new_key()
    for _ in range(3):
        assert (await post(client, "/events", body, key)).status_code == 201
    listed = (await client.get("/events", params={"location": body["location"]})).json()
    assert listed["total"] == 1


async def test_a_replayed_registration_registered_once(client: httpx.AsyncClient):
    event = await create_event(client)
    attendee = await create_attendee(client)
    body = {"eventId": event["id"], "attendeeId": attendee["id"]}
    key = new_key()
    for _ in range(3):
        assert (await post(client, "/registrations", body, key)).status_code == 201
    assert (await client.get(f"/events/{event['id']}")).json()["registeredCount"] == 1
    mine = (await client.get(f"/attendees/{attendee['id']}/registrations")).json()
    assert mine["total"] == 1


async def test_the_same_json_written_differently_is_the_same_request(client: httpx.AsyncClient):
    body = attendee_body()
    key = new_key()
    first = await post(client, "/attendees", body, key)
    assert first.status_code == 201
    reordered = orjson.dumps(dict(reversed(body.items()))).replace(b",", b" ,\n ")
    again = await client.post(
        "/attendees", content=reordered, headers={HEADER: key, "Content-Type": "application/json"}
    )
    assert_replay_of(again, first)


async def test_without_a_key_each_request_executes(client: httpx.AsyncClient):
    body = attendee_body()
    assert (await post(client, "/attendees", body, None)).status_code == 201
    again = await post(client, "/attendees", body, None)
    assert_problem(again, 409, "email_taken")


async def test_a_different_key_executes_again(client: httpx.AsyncClient):
    body = attendee_body()
    assert (await post(client, "/attendees", body, new_key())).status_code == 201
    again = await post(client, "/attendees", body, new_key())
    assert_problem(again, 409, "email_taken")
    assert REPLAYED_HEADER not in again.headers


# --- refusals -----------------------------------------------------------------------


async def test_the_same_key_with_another_body_is_409(client: httpx.AsyncClient):
    key = new_key()
    assert (await post(client, "/attendees", attendee_body(), key)).status_code == 201
    reused = await post(client, "/attendees", attendee_body(), key)
    body = assert_problem(reused, 409, "idempotency_key_reused")
    assert key in body["detail"]
    assert REPLAYED_HEADER not in reused.headers


async def test_the_same_key_on_another_route_is_409(client: httpx.AsyncClient):
    key = new_key()
    body = attendee_body()
    assert (await post(client, "/attendees", body, key)).status_code == 201
    assert_problem(await post(client, "/events", body, key), 409, "idempotency_key_reused")


async def test_a_refusal_is_the_answer_and_is_replayed(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    holder, latecomer = await create_attendee(client), await create_attendee(client)
    seat = await post(
        client, "/registrations", {"eventId": event["id"], "attendeeId": holder["id"]}, None
    )
    assert seat.status_code == 201
    body = {"eventId": event["id"], "attendeeId": latecomer["id"]}
    key = new_key()
    full = await post(client, "/registrations", body, key)
    assert_problem(full, 409, "event_full")
    # The spot frees up; the same key still gets the answer it got.
    assert (await client.delete(f"/registrations/{seat.json()['id']}",
                                params={"token": seat.json()["manageToken"]})).status_code == 204
    replay = await post(client, "/registrations", body, key)
    assert_problem(replay, 409, "event_full")
    assert_replay_of(replay, full)
    # A new key is a new attempt.
    assert (await post(client, "/registrations", body, new_key())).status_code == 201


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"name": "Ada", "email": "not an address"}', "application/json", 400),
        (b'{"name": ', "application/json", 400),
        (b"name=Ada", "application/x-www-form-urlencoded", 415),
    ],
)
async def test_a_malformed_request_holds_no_key(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int
):
    key = new_key()
    refused = await client.post(
        "/attendees", content=content, headers={HEADER: key, "Content-Type": content_type}
    )
    assert_problem(refused, status)
    # Not stored: the key is free for the corrected request.
    fixed = await post(client, "/attendees", attendee_body(), key)
    assert fixed.status_code == 201, fixed.text
    assert REPLAYED_HEADER not in fixed.headers


@pytest.mark.parametrize(
    "key",
    [b"", b"k" * 256, b"caf\xc3\xa9", b"caf\xe9", b"tab\there"],
    ids=["empty", "256-chars", "utf8", "latin1", "tab"],
)
async def test_a_bad_key_is_400_naming_the_header(client: httpx.AsyncClient, key: bytes):
    response = await client.post(
        "/attendees", json=attendee_body(), headers=[(HEADER.encode(), key)]
    )
    problem = assert_problem(response, 400, "validation_failed")
    assert problem["errors"][0]["field"] == HEADER


async def test_a_key_sent_twice_is_400(client: httpx.AsyncClient):
    response = await client.post(
        "/attendees", json=attendee_body(), headers=[(HEADER, "a"), (HEADER, "b")]
    )
    problem = assert_problem(response, 400, "validation_failed")
    assert problem["errors"] == [{"field": HEADER, "message": "must be sent once"}]


@pytest.mark.parametrize("key", ["k" * 255, "a key with spaces", "!~\"'{}"])
async def test_printable_keys_up_to_255_characters_are_accepted(
    client: httpx.AsyncClient, key: str
):
    key = f"{uuid.uuid4().hex}{key}"[:255]
    body = attendee_body()
    first = await post(client, "/attendees", body, key)
    assert first.status_code == 201, first.text
    assert_replay_of(await post(client, "/attendees", body, key), first)


# --- concurrency --------------------------------------------------------------------


async def send_together(
    client: httpx.AsyncClient, path: str, body: Any, key: str, n: int
) -> list[httpx.Response]:
    answers: list[httpx.Response] = []

    async def one() -> None:
        answers.append(await post(client, path, body, key))

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
    return answers


async def test_concurrent_registrations_with_one_key_register_once(client: httpx.AsyncClient):
    event = await create_event(client)
    attendee = await create_attendee(client)
    body = {"eventId": event["id"], "attendeeId": attendee["id"]}
    answers = await send_together(client, "/registrations", body, new_key(), 20)
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.content for a in answers}) == 1
    assert sum(REPLAYED_HEADER not in a.headers for a in answers) == 1
    assert (await client.get(f"/events/{event['id']}")).json()["registeredCount"] == 1


async def test_concurrent_creates_with_one_key_create_one_event(client: httpx.AsyncClient):
    body = event_body()
    answers = await send_together(client, "/events", body, new_key(), 20)
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.content for a in answers}) == 1
    listed = (await client.get("/events", params={"location": body["location"]})).json()
    assert listed["total"] == 1


# --- expiry -------------------------------------------------------------------------


async def test_an_expired_key_is_new_again(client: httpx.AsyncClient, database_url: str):
    body = attendee_body()
    key = new_key()
    assert (await post(client, "/attendees", body, key)).status_code == 201
    await age_key(database_url, key, TTL_SECONDS / 3600 - 0.1)
    assert (await post(client, "/attendees", body, key)).headers[REPLAYED_HEADER] == "true"
    await age_key(database_url, key, TTL_SECONDS / 3600 + 0.1)
    # Executed again (so the email is taken now), not replayed, not refused as reused.
    again = await post(client, "/attendees", body, key)
    assert_problem(again, 409, "email_taken")
    assert REPLAYED_HEADER not in again.headers
    # And a different body with an expired key is a new request, not a reuse.
    await age_key(database_url, key, TTL_SECONDS / 3600 + 0.1)
    assert (await post(client, "/attendees", attendee_body(), key)).status_code == 201


# --- a daemon of its own: restarts, sweeps, leases, auth ----------------------------


async def test_answers_survive_a_restart_and_expired_keys_are_swept(
    fresh_database_url: str, workdir: Path
):
    daemon = DaemonProcess(fresh_database_url, workdir).start()
    body = attendee_body()
    key, old_key = new_key(), new_key()
    try:
        async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
            first = await post(client, "/attendees", body, key)
            assert first.status_code == 201
            assert (await post(client, "/attendees", attendee_body(), old_key)).status_code == 201
        await age_key(fresh_database_url, old_key, TTL_SECONDS / 3600 + 1)
        assert await trio.to_thread.run_sync(daemon.stop) == 0, daemon.log()
        await trio.to_thread.run_sync(daemon.start)
        async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
            assert_replay_of(await post(client, "/attendees", body, key), first)
    finally:
        assert await trio.to_thread.run_sync(daemon.stop) == 0, daemon.log()
    # The restarted daemon's first keyed request swept the expired key.
    keys = {r["key"] for r in await sql(fresh_database_url, "SELECT key FROM idempotency_keys")}
    assert keys == {key}
    assert len(await sql(fresh_database_url, "SELECT 1 FROM attendees")) == 2


TOKEN = "idempotency-admin-token"
REQUEST_TIMEOUT_SECONDS = 2


@pytest.fixture(scope="module")
def own_database(pg_admin_url: str) -> Iterator[str]:
    with scratch_database(pg_admin_url) as url:
        yield url


@pytest.fixture(scope="module")
def strict(own_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A daemon with admin tokens and a short request deadline."""
    daemon = DaemonProcess(
        own_database,
        tmp_path_factory.mktemp("idempotency"),
        server={"request_timeout_seconds": REQUEST_TIMEOUT_SECONDS},
        auth={"admin_tokens": [TOKEN]},
    ).start()
    yield daemon.url
    assert daemon.stop() == 0, daemon.log()


async def hold_key(url: str, key: str, path: str, body: Any, claimed_hours_ago: float) -> None:
    """A pending claim of this request, as a request that is running (or died) leaves it."""
    fingerprint = request_fingerprint("POST", path, orjson.dumps(body))
    await sql(
        url,
        "INSERT INTO idempotency_keys (key, request_hash, owner, claimed_at)"
        " VALUES ($1, $2, $3, now() - make_interval(hours => $4))",
        key,
        fingerprint,
        uuid.uuid4(),
        float(claimed_hours_ago),
    )


async def test_an_unauthorized_request_claims_no_key(strict: str, own_database: str):
    body = event_body()
    key = new_key()
    async with httpx.AsyncClient(base_url=strict, timeout=30) as client:
        assert_problem(await post(client, "/events", body, key), 401, "unauthorized")
        rows = await sql(own_database, "SELECT 1 FROM idempotency_keys WHERE key = $1", key)
        assert rows == []
        created = await post(client, "/events", body, key, Authorization=f"Bearer {TOKEN}")
        assert created.status_code == 201, created.text
        assert REPLAYED_HEADER not in created.headers
        # Replays are admin answers too: no token, no replay.
        assert_problem(await post(client, "/events", body, key), 401, "unauthorized")


async def test_a_retry_waits_for_a_running_claim_within_its_deadline(
    strict: str, own_database: str
):
    body = attendee_body()
    key = new_key()
    await hold_key(own_database, key, "/attendees", body, claimed_hours_ago=-1)  # lease ahead
    async with httpx.AsyncClient(base_url=strict, timeout=30) as client:
        waited = await post(client, "/attendees", body, key)
        assert_problem(waited, 503, "unavailable")
        assert int(waited.headers["retry-after"]) >= 1
        # Another body with the key is refused at once, running or not.
        assert_problem(
            await post(client, "/attendees", attendee_body(), key), 409, "idempotency_key_reused"
        )
    assert await sql(own_database, "SELECT 1 FROM attendees WHERE email = $1", body["email"]) == []


async def test_a_claim_abandoned_past_its_lease_is_taken_over(strict: str, own_database: str):
    body = attendee_body()
    key = new_key()
    await hold_key(own_database, key, "/attendees", body, claimed_hours_ago=1)  # owner died
    async with httpx.AsyncClient(base_url=strict, timeout=30) as client:
        taken = await post(client, "/attendees", body, key)
        assert taken.status_code == 201, taken.text
        assert REPLAYED_HEADER not in taken.headers
        assert_replay_of(await post(client, "/attendees", body, key), taken)


# --- in-process, on a real PostgreSQL: which answers are kept ------------------------

LEASE_SECONDS = 30.0


async def claim(db: Database, key: str, fingerprint: bytes) -> store.ClaimResult:
    return await store.claim(
        db, key, fingerprint, ttl_seconds=TTL_SECONDS, lease_seconds=LEASE_SECONDS
    )


def failing(error: BaseException) -> Any:
    async def work() -> Any:
        raise error

    return work


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[Database]:
    async with open_database(fresh_database_url, pool_size=4, timeout_seconds=5) as database:
        await apply_migrations(database)
        yield database


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (EventFull("Event e has no spots left (1/1)."), 409),
        (NotFound("Attendee a does not exist."), 404),
    ],
)
async def test_a_refusal_by_the_domain_is_stored(db: Database, error: EventdError, status: int):
    held = await claim(db, "refused", b"h" * 32)
    assert isinstance(held, store.Claimed)
    answer = await run_claimed(db, "refused", held.owner, failing(error))
    assert answer.status_code == status
    stored = await claim(db, "refused", b"h" * 32)
    assert stored == store.StoredResponse(
        status, {"Content-Type": "application/problem+json"}, await answer.get_data()
    )
    assert await claim(db, "refused", b"x" * 32) == store.Reused()


async def test_a_success_is_stored_with_its_location(db: Database):
    held = await claim(db, "made", b"h" * 32)
    assert isinstance(held, store.Claimed)

    async def work() -> Any:
        return json_response({"id": "1"}, 201, location="/attendees/1")

    await run_claimed(db, "made", held.owner, work)
    assert await claim(db, "made", b"h" * 32) == store.StoredResponse(
        201, {"Content-Type": "application/json", "Location": "/attendees/1"}, b'{"id":"1"}'
    )


@pytest.mark.parametrize(
    "error",
    [
        ValidationFailed([FieldError("email", "is not an email address")]),
        Unavailable("The database cannot be reached right now."),
        RuntimeError("a bug"),
    ],
    ids=["400", "503", "500"],
)
async def test_failures_release_the_key(db: Database, error: BaseException):
    held = await claim(db, "failed", b"h" * 32)
    assert isinstance(held, store.Claimed)
    with pytest.raises(type(error)):
        await run_claimed(db, "failed", held.owner, failing(error))
    # The key is free: the next request with it executes.
    assert isinstance(await claim(db, "failed", b"h" * 32), store.Claimed)


async def test_a_cancelled_request_releases_the_key(db: Database):
    held = await claim(db, "cancelled", b"h" * 32)
    assert isinstance(held, store.Claimed)

    async def work() -> Any:
        await trio.sleep_forever()

    with trio.move_on_after(0.1):  # the request deadline, in miniature
        await run_claimed(db, "cancelled", held.owner, work)
    assert isinstance(await claim(db, "cancelled", b"h" * 32), store.Claimed)


async def test_a_taken_over_claim_cannot_store_or_release(db: Database):
    held = await claim(db, "k", b"h" * 32)
    assert isinstance(held, store.Claimed)
    stale = store.StoredResponse(201, {}, b"{}")
    assert await store.store(db, "k", uuid.uuid4(), stale) is False
    await store.release(db, "k", uuid.uuid4())
    assert await claim(db, "k", b"h" * 32) == store.Pending()


async def test_the_sweep_deletes_only_expired_keys(db: Database):
    for key in ("old-1", "old-2", "new"):
        assert isinstance(await claim(db, key, b"h" * 32), store.Claimed)
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
            " WHERE key LIKE 'old-%'"
        )
    assert await store.sweep_expired(db, ttl_seconds=TTL_SECONDS, max_rows=1) == 1
    assert await store.sweep_expired(db, ttl_seconds=TTL_SECONDS, max_rows=10) == 1
    assert await store.sweep_expired(db, ttl_seconds=TTL_SECONDS, max_rows=10) == 0
    assert [r["key"] for r in await db.fetch("SELECT key FROM idempotency_keys")] == ["new"]
