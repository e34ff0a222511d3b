"""/registrations end to end: register, waitlist, refusals, read, list an event's, cancel.

Runs against the shared daemon; every event is made by the test that uses it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import trio

from tests.conftest import (
    UTC_Z,
    assert_problem,
    create_attendee,
    create_event,
    register,
    unique_location,
)
from tests.support import run_sql


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def registered(
    client: httpx.AsyncClient, event_id: str, attendee_id: str, waitlist: bool = False
) -> dict[str, Any]:
    response = await register(client, event_id, attendee_id, waitlist)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def people(client: httpx.AsyncClient, n: int) -> list[dict[str, Any]]:
    return [await create_attendee(client, name=f"P{i}") for i in range(n)]


async def cancel(client: httpx.AsyncClient, registration: dict[str, Any]) -> httpx.Response:
    """DELETE the registration with its manage token, as its owner does."""
    return await client.delete(f"/registrations/{registration['id']}",
                               params={"token": registration["manageToken"]})


def shown(registration: dict[str, Any]) -> dict[str, Any]:
    """A 201's registration as every later read shows it: without the manage token."""
    return {k: v for k, v in registration.items() if k != "manageToken"}


def counts(event: dict[str, Any]) -> tuple[int, int, int]:
    return event["registeredCount"], event["availableSpots"], event["waitlistCount"]


# --- POST /registrations ----------------------------------------------------------


async def test_registration_is_confirmed_while_spots_remain(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=2)
    first, second = await people(client, 2)
    response = await register(client, event["id"], first["id"])
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].split(";")[0] == "application/json"
    registration = response.json()
    assert set(registration) == {"id", "eventId", "attendeeId", "status", "waitlistPosition",
                                 "expiresAt", "checkedInAt", "createdAt", "updatedAt",
                                 "manageToken"}
    uuid.UUID(registration["id"])
    assert registration["eventId"] == event["id"]
    assert registration["attendeeId"] == first["id"]
    assert registration["status"] == "confirmed"
    assert registration["waitlistPosition"] is None
    assert UTC_Z.match(registration["createdAt"])
    assert counts(await get_json(client, f"/events/{event['id']}")) == (1, 1, 0)
    # Asking for the waitlist while a spot is free still confirms.
    last = await registered(client, event["id"], second["id"], waitlist=True)
    assert (last["status"], last["waitlistPosition"]) == ("confirmed", None)
    assert counts(await get_json(client, f"/events/{event['id']}")) == (2, 0, 0)


async def test_the_201_carries_the_stored_created_at(client: httpx.AsyncClient):
    # The writer decodes a new registration's time once, as the event's updated_at
    # of the same transaction: the answer must still say what the row holds.
    event = await create_event(client, maxAttendees=1)
    first, second = await people(client, 2)
    for attendee in (first, second):  # confirmed, then waitlisted
        made = await registered(client, event["id"], attendee["id"], waitlist=True)
        stored = await get_json(client, f"/registrations/{made['id']}")
        assert made["createdAt"] == stored["createdAt"]
        assert shown(made) == stored


async def test_full_event_is_409_event_full_and_writes_nothing(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    first, second = await people(client, 2)
    await registered(client, event["id"], first["id"])
    before = await get_json(client, f"/events/{event['id']}")
    for body in ({"eventId": event["id"], "attendeeId": second["id"], "waitlist": False},
                 {"eventId": event["id"], "attendeeId": second["id"]}):
        problem = assert_problem(await client.post("/registrations", json=body),
                                 409, "event_full")
        assert event["id"] in problem["detail"]
    assert await get_json(client, f"/events/{event['id']}") == before
    page = await get_json(client, f"/attendees/{second['id']}/registrations")
    assert page["total"] == 0


async def test_waitlist_on_a_full_event_queues_in_order(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    first, *queue = await people(client, 4)
    await registered(client, event["id"], first["id"])
    for position, person in enumerate(queue, start=1):
        registration = await registered(client, event["id"], person["id"], waitlist=True)
        assert registration["status"] == "waitlisted"
        assert registration["waitlistPosition"] == position
        assert registration["attendeeId"] == person["id"]
        assert await get_json(client, f"/registrations/{registration['id']}") == shown(registration)
    assert counts(await get_json(client, f"/events/{event['id']}")) == (1, 0, 3)


async def test_already_registered_when_asking_for_the_waitlist(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    holder, waiting = await people(client, 2)
    await registered(client, event["id"], holder["id"])
    await registered(client, event["id"], waiting["id"], waitlist=True)
    before = await get_json(client, f"/events/{event['id']}")
    for person in (holder, waiting):
        response = await register(client, event["id"], person["id"], waitlist=True)
        assert_problem(response, 409, "already_registered")
    assert await get_json(client, f"/events/{event['id']}") == before


async def test_already_registered_on_a_full_event_without_waitlist(client: httpx.AsyncClient):
    # The attendee holds a registration: that, not "no spot left", is the answer.
    event = await create_event(client, maxAttendees=1)
    holder, waiting = await people(client, 2)
    await registered(client, event["id"], holder["id"])
    await registered(client, event["id"], waiting["id"], waitlist=True)
    for person in (holder, waiting):
        response = await register(client, event["id"], person["id"], waitlist=False)
        assert_problem(response, 409, "already_registered")


async def test_already_registered_on_an_event_with_room(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=5)
    person = await create_attendee(client)
    await registered(client, event["id"], person["id"])
    assert_problem(await register(client, event["id"], person["id"]), 409,
                   "already_registered")
    assert counts(await get_json(client, f"/events/{event['id']}")) == (1, 4, 0)


async def test_unknown_event_is_404_naming_the_event(client: httpx.AsyncClient):
    person = await create_attendee(client)
    missing = str(uuid.uuid4())
    body = assert_problem(await register(client, missing, person["id"]), 404, "not_found")
    assert missing in body["detail"]
    assert "event" in body["detail"].lower()


async def test_unknown_attendee_is_404_naming_the_attendee(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=3)
    missing = str(uuid.uuid4())
    body = assert_problem(await register(client, event["id"], missing), 404, "not_found")
    assert missing in body["detail"]
    assert "attendee" in body["detail"].lower()
    assert counts(await get_json(client, f"/events/{event['id']}")) == (0, 3, 0)


async def test_registering_for_a_started_event_is_409(
    client: httpx.AsyncClient, database_url: str
):
    event_id = uuid.uuid4()
    starts = datetime.now(UTC) - timedelta(minutes=30)
    await trio.to_thread.run_sync(
        run_sql, database_url,
        "INSERT INTO events (id, name, description, starts_at, duration_minutes, ends_at,"
        " location, max_attendees) VALUES ($1, $2, '', $3, $4, $5, $6, $7)",
        event_id, "Already going", starts, 120, starts + timedelta(minutes=120),
        unique_location(), 10,
    )
    person = await create_attendee(client)
    event = await get_json(client, f"/events/{event_id}")
    assert event["registeredCount"] == 0
    for waitlist in (False, True):
        body = assert_problem(await register(client, str(event_id), person["id"], waitlist),
                              409, "event_started")
        assert body["detail"]
    assert counts(await get_json(client, f"/events/{event_id}")) == (0, 10, 0)


# --- GET /registrations/{id} ------------------------------------------------------


async def test_get_registration(client: httpx.AsyncClient):
    event = await create_event(client)
    person = await create_attendee(client)
    registration = await registered(client, event["id"], person["id"])
    response = await client.get(f"/registrations/{registration['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/json"
    assert response.json() == shown(registration)


async def test_get_unknown_registration_is_404(client: httpx.AsyncClient):
    missing = uuid.uuid4()
    body = assert_problem(await client.get(f"/registrations/{missing}"), 404, "not_found")
    assert str(missing) in body["detail"]


# --- GET /registrations/event/{id} ------------------------------------------------


async def test_event_registrations_list_confirmed_then_waitlist_with_attendees(
    client: httpx.AsyncClient,
):
    event = await create_event(client, maxAttendees=3)
    crowd = await people(client, 6)
    made = [await registered(client, event["id"], p["id"], waitlist=True) for p in crowd]
    assert [r["status"] for r in made] == ["confirmed"] * 3 + ["waitlisted"] * 3

    page = await get_json(client, f"/registrations/event/{event['id']}")
    assert (page["total"], page["page"], page["limit"]) == (6, 1, 100)
    assert [i["id"] for i in page["items"]] == [r["id"] for r in made]
    for item, registration, person in zip(page["items"], made, crowd, strict=True):
        assert item["attendee"] == {"id": person["id"], "name": person["name"],
                                    "email": person["email"]}
        assert {k: v for k, v in item.items() if k != "attendee"} == shown(registration)
    assert [i["waitlistPosition"] for i in page["items"]] == [None, None, None, 1, 2, 3]


async def test_event_registrations_status_filter(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=2)
    crowd = await people(client, 5)
    made = [await registered(client, event["id"], p["id"], waitlist=True) for p in crowd]
    confirmed = await get_json(client, f"/registrations/event/{event['id']}",
                               status="confirmed")
    assert [i["id"] for i in confirmed["items"]] == [r["id"] for r in made[:2]]
    assert confirmed["total"] == 2
    waitlisted = await get_json(client, f"/registrations/event/{event['id']}",
                                status="waitlisted")
    assert [i["id"] for i in waitlisted["items"]] == [r["id"] for r in made[2:]]
    assert [i["waitlistPosition"] for i in waitlisted["items"]] == [1, 2, 3]
    assert waitlisted["total"] == 3
    bad = await client.get(f"/registrations/event/{event['id']}", params={"status": "gone"})
    assert [e["field"] for e in assert_problem(bad, 400, "validation_failed")["errors"]] == [
        "status"]


async def test_event_registrations_pages_keep_queue_positions(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    crowd = await people(client, 5)
    made = [await registered(client, event["id"], p["id"], waitlist=True) for p in crowd]
    seen: list[dict[str, Any]] = []
    for number in (1, 2, 3):
        page = await get_json(client, f"/registrations/event/{event['id']}",
                              page=number, limit=2)
        assert (page["total"], page["page"], page["limit"]) == (5, number, 2)
        seen += page["items"]
    assert [i["id"] for i in seen] == [r["id"] for r in made]
    assert [i["waitlistPosition"] for i in seen] == [None, 1, 2, 3, 4]
    beyond = await get_json(client, f"/registrations/event/{event['id']}", page=4, limit=2)
    assert (beyond["items"], beyond["total"]) == ([], 5)


async def test_event_registrations_limit_bounds(client: httpx.AsyncClient):
    event = await create_event(client)
    path = f"/registrations/event/{event['id']}"
    assert (await get_json(client, path, limit=1000))["limit"] == 1000
    for bad in ({"limit": 1001}, {"limit": 0}, {"page": 0}, {"limit": "many"}):
        body = assert_problem(await client.get(path, params=bad), 400, "validation_failed")
        assert [e["field"] for e in body["errors"]] == list(bad)


async def test_event_without_registrations_gives_an_empty_page(client: httpx.AsyncClient):
    event = await create_event(client)
    page = await get_json(client, f"/registrations/event/{event['id']}")
    assert page == {"items": [], "total": 0, "page": 1, "limit": 100}


async def test_registrations_of_an_unknown_event_is_404(client: httpx.AsyncClient):
    response = await client.get(f"/registrations/event/{uuid.uuid4()}")
    assert_problem(response, 404, "not_found")


# --- DELETE /registrations/{id} ---------------------------------------------------


async def test_cancel_confirmed_promotes_the_head_of_the_waitlist(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=2)
    crowd = await people(client, 5)
    made = [await registered(client, event["id"], p["id"], waitlist=True) for p in crowd]
    before = await get_json(client, f"/events/{event['id']}")
    assert counts(before) == (2, 0, 3)

    response = await cancel(client, made[0])
    assert response.status_code == 204
    assert response.content == b""
    # Kept as history.
    assert (await get_json(client, f"/registrations/{made[0]['id']}"))["status"] == "cancelled"

    promoted = await get_json(client, f"/registrations/{made[2]['id']}")
    assert (promoted["status"], promoted["waitlistPosition"]) == ("confirmed", None)
    assert [
        (r["status"], r["waitlistPosition"])
        for r in [await get_json(client, f"/registrations/{m['id']}") for m in made[3:]]
    ] == [("waitlisted", 1), ("waitlisted", 2)]
    after = await get_json(client, f"/events/{event['id']}")
    assert counts(after) == (2, 0, 2)
    assert after["version"] == before["version"] + 1

    listing = await get_json(client, f"/registrations/event/{event['id']}")
    assert [(i["id"], i["status"], i["waitlistPosition"]) for i in listing["items"]] == [
        (made[1]["id"], "confirmed", None),
        (made[2]["id"], "confirmed", None),
        (made[3]["id"], "waitlisted", 1),
        (made[4]["id"], "waitlisted", 2),
    ]
    # Cancelling it again changes nothing.
    again = await cancel(client, made[0])
    assert again.status_code == 204
    assert (await get_json(client, f"/events/{event['id']}"))["version"] == after["version"]


async def test_cancel_without_a_waitlist_frees_the_spot(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    first, second = await people(client, 2)
    registration = await registered(client, event["id"], first["id"])
    assert (await cancel(client, registration)).status_code == 204
    assert counts(await get_json(client, f"/events/{event['id']}")) == (0, 1, 0)
    assert (await registered(client, event["id"], second["id"]))["status"] == "confirmed"


async def test_cancel_waitlisted_shifts_the_queue_behind_it(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    crowd = await people(client, 5)
    made = [await registered(client, event["id"], p["id"], waitlist=True) for p in crowd]
    assert [r["waitlistPosition"] for r in made] == [None, 1, 2, 3, 4]

    assert (await cancel(client, made[2])).status_code == 204
    states = [await get_json(client, f"/registrations/{r['id']}") for r in made
              if r is not made[2]]
    assert [(r["status"], r["waitlistPosition"]) for r in states] == [
        ("confirmed", None), ("waitlisted", 1), ("waitlisted", 2), ("waitlisted", 3)]
    assert counts(await get_json(client, f"/events/{event['id']}")) == (1, 0, 3)
    # A newcomer joins at the end of the shortened queue.
    newcomer = await create_attendee(client)
    joined = await registered(client, event["id"], newcomer["id"], waitlist=True)
    assert joined["waitlistPosition"] == 4


async def test_cancel_unknown_registration_is_404(client: httpx.AsyncClient):
    assert_problem(await client.delete(f"/registrations/{uuid.uuid4()}"), 404, "not_found")
