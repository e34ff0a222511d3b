"""POST /registrations through the gates, against the real daemon.

Before ``salesStartAt`` a registration is ``409 sales_not_open``; an event
with an admission queue needs the ``Admission-Token`` of an admitted ticket
(``403 admission_required``), good for one registration (``409
admission_used``) until it expires (``410 admission_expired``). The database
decides both in the statement that registers, under the event's row lock, so
one token makes one registration whichever daemons it is sent to at once. A
refusal writes nothing: no registration, no attendee, and the admission stays
unused.

Queues here admit 100000 a minute, so a ticket is admitted a moment after it
joins; an expired admission is made by moving its queue's history back in the
database, not by waiting for it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import trio

from tests.conftest import assert_problem, create_attendee, create_event
from tests.support import WAIT_SECONDS, DaemonProcess, run_sql

FAST = {"ratePerMinute": 100000, "tokenMinutes": 1}


def later(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def admitted(client: httpx.AsyncClient, event_id: str) -> dict[str, Any]:
    """A new ticket of the event's queue, once it is admitted (polled under a deadline)."""
    response = await client.post(f"/events/{event_id}/queue")
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    path = f"/events/{event_id}/queue/{ticket['ticketId']}"
    with trio.fail_after(WAIT_SECONDS):
        while ticket["status"] != "admitted":
            assert ticket["status"] == "waiting", ticket
            await trio.sleep(0.02)
            found = await client.get(path, params={"token": ticket["token"]})
            assert found.status_code == 200, found.text
            ticket = {**ticket, **found.json()}
    return ticket


async def register(client: httpx.AsyncClient, event_id: str, attendee_id: str,
                   token: str | None = None, **body: Any) -> httpx.Response:
    headers = {"Admission-Token": token} if token is not None else {}
    return await client.post("/registrations", headers=headers,
                             json={"eventId": event_id, "attendeeId": attendee_id, **body})


async def sql(url: str, query: str, *args: Any) -> list[Any]:
    return await trio.to_thread.run_sync(lambda: run_sql(url, query, *args))


async def ticket_use(url: str, ticket_id: str) -> tuple[Any, Any]:
    [row] = await sql(url, "SELECT used_at, used_by FROM queue_tickets WHERE id = $1",
                      uuid.UUID(ticket_id))
    return row["used_at"], row["used_by"]


async def registrations_of(url: str, event_id: str) -> int:
    rows = await sql(url, "SELECT count(*) FROM registrations WHERE event_id = $1",
                     uuid.UUID(event_id))
    count: int = rows[0][0]
    return count


async def test_a_queued_event_needs_an_admitted_token(
    client: httpx.AsyncClient, database_url: str
):
    event = await create_event(client, admission=FAST)
    eid = event["id"]
    ada = await create_attendee(client)
    other = await create_event(client, admission=FAST)
    theirs = await admitted(client, other["id"])

    refused = [
        await register(client, eid, ada["id"]),  # no token
        await register(client, eid, ada["id"], "x" * 42),  # cannot be a token
        await register(client, eid, ada["id"], "A" * 43),  # no ticket's
        await register(client, eid, ada["id"], theirs["token"]),  # another event's ticket
    ]
    for response in refused:
        problem = assert_problem(response, 403, "admission_required")
        assert theirs["token"] not in problem["detail"]
    both = await client.post("/registrations", json={"eventId": eid, "attendeeId": ada["id"]},
                             headers=[("Admission-Token", theirs["token"]),
                                      ("Admission-Token", theirs["token"])])
    assert_problem(both, 403, "admission_required")
    assert await registrations_of(database_url, eid) == 0
    assert await ticket_use(database_url, theirs["ticketId"]) == (None, None)  # not used elsewhere

    ticket = await admitted(client, eid)
    made = await register(client, eid, ada["id"], ticket["token"])
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "confirmed"
    used_at, used_by = await ticket_use(database_url, ticket["ticketId"])
    assert used_at is not None
    assert str(used_by) == made.json()["id"]
    # One registration per admission: for another attendee too.
    bob = await create_attendee(client, "Bob")
    again = assert_problem(await register(client, eid, bob["id"], ticket["token"]), 409,
                           "admission_used")
    assert ticket["token"] not in again["detail"]
    read = await client.get(f"/events/{eid}/queue/{ticket['ticketId']}",
                            params={"token": ticket["token"]})
    assert read.json()["status"] == "used"
    assert await registrations_of(database_url, eid) == 1


async def test_a_ticket_still_waiting_is_not_an_admission(
    client: httpx.AsyncClient, database_url: str
):
    # One a minute: the first rank is admitted a minute after the opening.
    event = await create_event(client, admission={"ratePerMinute": 1, "tokenMinutes": 1})
    eid = event["id"]
    joined = await client.post(f"/events/{eid}/queue")
    assert joined.status_code == 201, joined.text
    ticket = joined.json()
    assert ticket["status"] == "waiting"
    ada = await create_attendee(client)
    problem = assert_problem(await register(client, eid, ada["id"], ticket["token"]), 403,
                             "admission_required")
    assert ticket["token"] not in problem["detail"]
    assert await registrations_of(database_url, eid) == 0
    assert await ticket_use(database_url, ticket["ticketId"]) == (None, None)
    read = await client.get(f"/events/{eid}/queue/{ticket['ticketId']}",
                            params={"token": ticket["token"]})
    assert read.json()["status"] == "waiting"


async def test_a_refused_registration_leaves_its_admission_unused(
    client: httpx.AsyncClient, database_url: str
):
    """Already registered, the event full: the admission is kept for a registration."""
    event = await create_event(client, admission=FAST, maxAttendees=1)
    eid = event["id"]
    ada, bob, cy = [await create_attendee(client, n) for n in ("Ada", "Bob", "Cy")]
    first = await admitted(client, eid)
    assert (await register(client, eid, ada["id"], first["token"])).status_code == 201
    ticket = await admitted(client, eid)
    assert_problem(await register(client, eid, ada["id"], ticket["token"]), 409,
                   "already_registered")
    assert_problem(await register(client, eid, bob["id"], ticket["token"]), 409, "event_full")
    assert_problem(await register(client, eid, str(uuid.uuid4()), ticket["token"]), 404,
                   "not_found")
    assert await ticket_use(database_url, ticket["ticketId"]) == (None, None)
    waitlisted = await register(client, eid, cy["id"], ticket["token"], waitlist=True)
    assert waitlisted.status_code == 201, waitlisted.text
    assert waitlisted.json()["status"] == "waitlisted"  # a registration: the admission is used
    used_by = (await ticket_use(database_url, ticket["ticketId"]))[1]
    assert used_by == uuid.UUID(waitlisted.json()["id"])
    assert await registrations_of(database_url, eid) == 2


async def test_an_expired_admission_is_gone(client: httpx.AsyncClient, database_url: str):
    event = await create_event(client, admission=FAST)
    eid = event["id"]
    ticket = await admitted(client, eid)
    # The queue opened, and the ticket was admitted, two minutes ago: its minute is over.
    await sql(database_url,
            "WITH r AS (UPDATE admission_rates SET since = since - interval '2 minutes'"
            " WHERE event_id = $1)"
            " UPDATE queue_tickets SET ranked_at = ranked_at - interval '2 minutes',"
            " joined_at = joined_at - interval '2 minutes' WHERE event_id = $1",
            uuid.UUID(eid))
    read = await client.get(f"/events/{eid}/queue/{ticket['ticketId']}",
                            params={"token": ticket["token"]})
    assert read.json()["status"] == "expired"
    ada = await create_attendee(client)
    problem = assert_problem(await register(client, eid, ada["id"], ticket["token"]), 410,
                             "admission_expired")
    assert ticket["token"] not in problem["detail"]
    assert await registrations_of(database_url, eid) == 0
    assert await ticket_use(database_url, ticket["ticketId"]) == (None, None)


async def test_before_sales_open_every_registration_is_refused(
    client: httpx.AsyncClient, database_url: str
):
    queued = await create_event(client, admission=FAST, salesStartAt=later(1))
    plain = await create_event(client, salesStartAt=later(1))
    ada = await create_attendee(client)
    joined = await client.post(f"/events/{queued['id']}/queue")
    assert joined.status_code == 201, joined.text
    token = joined.json()["token"]
    for response in (
        await register(client, queued["id"], ada["id"]),
        await register(client, queued["id"], ada["id"], token),
        await register(client, queued["id"], ada["id"], "not a token"),
        await register(client, plain["id"], ada["id"]),
        await register(client, plain["id"], ada["id"], token),
    ):
        assert_problem(response, 409, "sales_not_open")
    # An inline attendee is not made either: the gates answer first.
    email = f"new.{uuid.uuid4().hex[:10]}@example.com"
    inline = await client.post("/registrations", headers={"Admission-Token": token}, json={
        "eventId": queued["id"], "attendee": {"name": "New", "email": email}})
    assert_problem(inline, 409, "sales_not_open")
    assert await sql(database_url, "SELECT id FROM attendees WHERE email = $1", email) == []
    for event in (queued, plain):
        assert await registrations_of(database_url, event["id"]) == 0
    # Sales that opened already are open.
    opened = await create_event(client, salesStartAt=later(-1))
    assert (await register(client, opened["id"], ada["id"])).status_code == 201


async def test_an_event_without_a_queue_ignores_the_header(client: httpx.AsyncClient):
    event = await create_event(client)
    for token in ("not a token", "A" * 43):
        ada = await create_attendee(client)
        response = await register(client, event["id"], ada["id"], token)
        assert response.status_code == 201, response.text


async def test_the_signup_form_s_inline_attendee_passes_the_gate(
    client: httpx.AsyncClient, database_url: str
):
    event = await create_event(client, admission=FAST)
    eid = event["id"]
    email = f"pat.{uuid.uuid4().hex[:10]}@example.com"
    body = {"eventId": eid, "attendee": {"name": "Pat", "email": email}}
    refused = await client.post("/registrations", json=body)
    assert_problem(refused, 403, "admission_required")
    assert await sql(database_url, "SELECT id FROM attendees WHERE email = $1", email) == []
    ticket = await admitted(client, eid)
    made = await client.post("/registrations", json=body,
                             headers={"Admission-Token": ticket["token"]})
    assert made.status_code == 201, made.text
    assert "manageToken" in made.json()
    again = await client.post("/registrations", json=body,
                              headers={"Admission-Token": ticket["token"]})
    assert_problem(again, 409, "admission_used")
    assert await registrations_of(database_url, eid) == 1


async def test_one_token_sent_fifty_times_to_two_daemons_makes_one_registration(
    two_daemons: list[DaemonProcess], fresh_database_url: str
):
    a, b = two_daemons
    async with httpx.AsyncClient(base_url=a.url, timeout=30) as on_a, \
            httpx.AsyncClient(base_url=b.url, timeout=30) as on_b:
        event = await create_event(on_a, admission=FAST, maxAttendees=100)
        eid = event["id"]
        ticket = await admitted(on_b, eid)
        people = [await create_attendee(on_a, f"P{n}") for n in range(50)]
        answers: list[httpx.Response] = []

        async def use(client: httpx.AsyncClient, attendee: dict[str, Any]) -> None:
            answers.append(await register(client, eid, attendee["id"], ticket["token"]))

        async with trio.open_nursery() as nursery:
            for n, attendee in enumerate(people):
                nursery.start_soon(use, (on_a, on_b)[n % 2], attendee)
    codes = Counter((r.status_code, r.json().get("code")) for r in answers)
    assert codes == {(201, None): 1, (409, "admission_used"): 49}, codes
    [made] = [r.json() for r in answers if r.status_code == 201]
    rows = await sql(fresh_database_url, "SELECT id FROM registrations WHERE event_id = $1",
                   uuid.UUID(eid))
    assert [str(r["id"]) for r in rows] == [made["id"]]
    assert (await ticket_use(fresh_database_url, ticket["ticketId"]))[1] == uuid.UUID(made["id"])
