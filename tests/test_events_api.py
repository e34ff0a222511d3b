"""/events end to end: create, read, edit, delete, list (order, filters, pages), stats.

Runs against the shared daemon; every event sits at a location of its own, and
list tests isolate their events with a unique search token in the name.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.conftest import (
    UTC_Z,
    assert_problem,
    create_attendee,
    create_event,
    future,
    parse_time,
    register,
    unique_location,
)
from tests.support import DaemonProcess

EVENT_KEYS = {
    "id", "name", "description", "date", "durationMinutes", "endsAt", "location",
    "maxAttendees", "registeredCount", "availableSpots", "waitlistCount", "version",
    "createdAt", "updatedAt", "timezone", "heldCount", "holdMinutes", "offerMinutes",
    "confirmation",
}


def at(days: float, hours: float = 0, minutes: float = 0) -> datetime:
    """A whole-second UTC moment this far in the future."""
    moment = datetime.now(UTC) + timedelta(days=days, hours=hours, minutes=minutes)
    return moment.replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")




async def get_event(client: httpx.AsyncClient, event_id: str) -> dict[str, Any]:
    response = await client.get(f"/events/{event_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def listed(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def attendees(client: httpx.AsyncClient, n: int) -> list[dict[str, Any]]:
    return [await create_attendee(client) for _ in range(n)]


# --- create and read ------------------------------------------------------------


async def test_create_answers_201_with_location_header_and_defaults(client: httpx.AsyncClient):
    start = at(days=40)
    location = unique_location()
    response = await client.post("/events", json={
        "name": "Defaults", "date": iso(start), "location": location, "maxAttendees": 25})
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].split(";")[0] == "application/json"
    event = response.json()
    assert set(event) == EVENT_KEYS
    uuid.UUID(event["id"])
    assert response.headers["location"] == f"/events/{event['id']}"
    assert event["name"] == "Defaults"
    assert event["description"] == ""
    assert event["durationMinutes"] == 60
    assert event["date"] == iso(start)
    assert event["endsAt"] == iso(start + timedelta(minutes=60))
    assert event["location"] == location
    assert event["maxAttendees"] == 25
    assert event["timezone"] == "UTC"  # events.default_timezone
    # registrations.hold_minutes; offers and email confirmation are opt-in.
    assert (event["heldCount"], event["holdMinutes"], event["offerMinutes"],
            event["confirmation"]) == (0, 15.0, 0.0, "instant")
    assert event["registeredCount"] == 0
    assert event["availableSpots"] == 25
    assert event["waitlistCount"] == 0
    assert isinstance(event["version"], int)
    assert event["version"] >= 1
    for key in ("date", "endsAt", "createdAt", "updatedAt"):
        assert UTC_Z.match(event[key]), (key, event[key])


async def test_create_keeps_every_given_field(client: httpx.AsyncClient):
    start = at(days=41)
    event = await create_event(client, name="Full", description="All the fields",
                               date=iso(start), durationMinutes=150, maxAttendees=7)
    assert event["description"] == "All the fields"
    assert event["durationMinutes"] == 150
    assert event["endsAt"] == iso(start + timedelta(minutes=150))
    assert event["maxAttendees"] == 7
    assert event["availableSpots"] == 7
    assert await get_event(client, event["id"]) == event


async def test_input_offset_is_converted_and_output_is_utc_z(client: httpx.AsyncClient):
    day = at(days=42).date()
    event = await create_event(client, date=f"{day.isoformat()}T10:30:00+01:00",
                               durationMinutes=90)
    assert event["date"] == f"{day.isoformat()}T09:30:00Z"
    assert event["endsAt"] == f"{day.isoformat()}T11:00:00Z"
    west = await create_event(client, date=f"{day.isoformat()}T23:15:00-05:00")
    next_day = (day + timedelta(days=1)).isoformat()
    assert west["date"] == f"{next_day}T04:15:00Z"
    assert west["endsAt"] == f"{next_day}T05:15:00Z"


async def test_get_returns_the_created_event(client: httpx.AsyncClient):
    event = await create_event(client, description="read me")
    response = await client.get(f"/events/{event['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/json"
    assert response.json() == event


async def test_get_unknown_event_is_404(client: httpx.AsyncClient):
    missing = uuid.uuid4()
    body = assert_problem(await client.get(f"/events/{missing}"), 404, "not_found")
    assert str(missing) in body["detail"]


# --- the overlap rule -------------------------------------------------------------


async def test_overlap_at_the_normalized_same_location_is_409(client: httpx.AsyncClient):
    place = f"Hall {uuid.uuid4().hex[:8]} East"
    start = at(days=50)
    first = await create_event(client, location=place, date=iso(start), durationMinutes=120)
    spelled = "  " + place.upper().replace(" ", "   \t ") + "  "
    cases = [
        (start, 120),                                  # same interval
        (start + timedelta(minutes=30), 30),           # inside
        (start - timedelta(minutes=30), 60),           # straddles the start
        (start + timedelta(minutes=119), 60),          # straddles the end
        (start - timedelta(hours=1), 240),             # encloses
    ]
    for begin, minutes in cases:
        for location in (place, spelled):
            response = await client.post("/events", json={
                "name": "Clash", "date": iso(begin), "durationMinutes": minutes,
                "location": location, "maxAttendees": 5})
            body = assert_problem(response, 409, "event_overlap")
            assert body["conflictingEventId"] == first["id"], (begin, minutes, location)
    # Nothing half-written: only the first event is at that place.
    page = await listed(client, location=place)
    assert [e["id"] for e in page["items"]] == [first["id"]]
    assert page["total"] == 1


async def test_touching_intervals_do_not_overlap(client: httpx.AsyncClient):
    place = unique_location()
    start = at(days=51)
    await create_event(client, location=place, date=iso(start), durationMinutes=60)
    after = await client.post("/events", json={
        "name": "After", "date": iso(start + timedelta(minutes=60)), "durationMinutes": 30,
        "location": place, "maxAttendees": 5})
    assert after.status_code == 201, after.text
    before = await client.post("/events", json={
        "name": "Before", "date": iso(start - timedelta(minutes=45)), "durationMinutes": 45,
        "location": place.lower(), "maxAttendees": 5})
    assert before.status_code == 201, before.text


async def test_same_time_elsewhere_is_allowed(client: httpx.AsyncClient):
    place = unique_location()
    start = at(days=52)
    await create_event(client, location=place, date=iso(start))
    # A location that merely contains the other one is a different place.
    other = await client.post("/events", json={
        "name": "Elsewhere", "date": iso(start), "location": place + " annex",
        "maxAttendees": 5})
    assert other.status_code == 201, other.text


async def test_a_place_with_invisible_characters_among_its_text_is_one_place(
    client: httpx.AsyncClient,
):
    # Only a place made of nothing but invisible characters is blank; one with text is
    # stored as sent, and the overlap rule and the location filter find it like any other.
    core = uuid.uuid4().hex[:8]
    place = f"\u200bHall {core}\u202c"
    start = at(days=53)
    first = await create_event(client, location=place, date=iso(start))
    assert first["location"] == place
    clash = await client.post("/events", json={
        "name": "Clash", "date": iso(start), "location": f"  \u200bHALL   {core}\u202c ",
        "maxAttendees": 5})
    assert assert_problem(clash, 409, "event_overlap")["conflictingEventId"] == first["id"]
    page = await listed(client, location=place.upper())
    assert [e["id"] for e in page["items"]] == [first["id"]]


# --- PATCH ------------------------------------------------------------------------


async def test_patch_changes_only_the_given_fields_and_bumps_version(
    client: httpx.AsyncClient,
):
    event = await create_event(client, description="before")
    response = await client.patch(f"/events/{event['id']}", json={"name": "Renamed"})
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["name"] == "Renamed"
    assert patched["version"] == event["version"] + 1
    assert parse_time(patched["updatedAt"]) >= parse_time(event["updatedAt"])
    unchanged = {k: v for k, v in event.items() if k not in ("name", "version", "updatedAt")}
    assert {k: patched[k] for k in unchanged} == unchanged
    assert await get_event(client, event["id"]) == patched

    again = await client.patch(f"/events/{event['id']}", json={"description": "after"})
    assert again.status_code == 200, again.text
    assert again.json()["description"] == "after"
    assert again.json()["version"] == event["version"] + 2


async def test_an_event_keeps_its_time_zone_and_its_times_stay_utc(client: httpx.AsyncClient):
    start = at(days=45)
    event = await create_event(client, date=iso(start), timezone="Europe/Berlin")
    assert event["timezone"] == "Europe/Berlin"
    assert event["date"] == iso(start)  # still UTC with a Z
    assert (await get_event(client, event["id"]))["timezone"] == "Europe/Berlin"

    moved = await client.patch(f"/events/{event['id']}", json={"timezone": "Asia/Kolkata"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["timezone"] == "Asia/Kolkata"
    assert moved.json()["date"] == iso(start)
    assert moved.json()["version"] == event["version"] + 1
    assert (await get_event(client, event["id"]))["timezone"] == "Asia/Kolkata"
    listed_now = await listed(client, location=event["location"])
    assert [e["timezone"] for e in listed_now["items"]] == ["Asia/Kolkata"]


async def test_a_time_zone_that_is_no_iana_name_is_400(client: httpx.AsyncClient):
    def body(zone: Any) -> dict[str, Any]:
        return {"name": "Zoned", "date": future(), "location": unique_location(),
                "maxAttendees": 5, "timezone": zone}

    for zone in ("Mars/Olympus_Mons", "CEST", "../../etc/passwd", "localtime", "",
                 "Europe/Berlin/", "x" * 65, 5):
        problem = assert_problem(
            await client.post("/events", json=body(zone)), 400, "validation_failed")
        assert [e["field"] for e in problem["errors"]] == ["timezone"], (zone, problem)
    # On create, null is the default zone; on PATCH, null is refused like any field's.
    created = await client.post("/events", json=body(None))
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["timezone"] == "UTC"
    for zone in ("Mars/Olympus_Mons", None):
        patched = await client.patch(f"/events/{event['id']}", json={"timezone": zone})
        problem = assert_problem(patched, 400, "validation_failed")
        assert [e["field"] for e in problem["errors"]] == ["timezone"], (zone, problem)
    assert await get_event(client, event["id"]) == event


async def test_patch_date_and_duration_recompute_ends_at(client: httpx.AsyncClient):
    event = await create_event(client)
    day = at(days=60).date().isoformat()
    response = await client.patch(f"/events/{event['id']}",
                                  json={"date": f"{day}T12:00:00+02:00", "durationMinutes": 45})
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["date"] == f"{day}T10:00:00Z"
    assert patched["durationMinutes"] == 45
    assert patched["endsAt"] == f"{day}T10:45:00Z"
    response = await client.patch(f"/events/{event['id']}", json={"durationMinutes": 10080})
    assert response.status_code == 200, response.text
    assert response.json()["endsAt"] == iso(parse_time(f"{day}T10:00:00Z") + timedelta(days=7))


async def test_patch_onto_another_event_is_409_and_changes_nothing(client: httpx.AsyncClient):
    place = unique_location()
    start = at(days=61)
    first = await create_event(client, location=place, date=iso(start), durationMinutes=60)
    second = await create_event(client, location=place,
                                date=iso(start + timedelta(hours=3)), durationMinutes=60)
    moved = await client.patch(f"/events/{second['id']}",
                               json={"date": iso(start + timedelta(minutes=30))})
    body = assert_problem(moved, 409, "event_overlap")
    assert body["conflictingEventId"] == first["id"]
    longer = await client.patch(f"/events/{first['id']}", json={"durationMinutes": 181})
    assert assert_problem(longer, 409, "event_overlap")["conflictingEventId"] == second["id"]
    assert await get_event(client, second["id"]) == second
    assert await get_event(client, first["id"]) == first


async def test_patch_location_onto_a_busy_place_is_409(client: httpx.AsyncClient):
    start = at(days=62)
    busy = await create_event(client, date=iso(start))
    free = await create_event(client, date=iso(start))
    response = await client.patch(f"/events/{free['id']}",
                                  json={"location": " " + busy["location"].upper() + " "})
    assert assert_problem(response, 409, "event_overlap")["conflictingEventId"] == busy["id"]
    assert (await get_event(client, free["id"]))["location"] == free["location"]


async def test_patch_moving_without_conflict_succeeds(client: httpx.AsyncClient):
    place = unique_location()
    start = at(days=63)
    await create_event(client, location=place, date=iso(start), durationMinutes=60)
    second = await create_event(client, location=place,
                                date=iso(start + timedelta(hours=3)), durationMinutes=60)
    # Right up against the first one: touching, not overlapping.
    touching = iso(start + timedelta(minutes=60))
    response = await client.patch(f"/events/{second['id']}", json={"date": touching})
    assert response.status_code == 200, response.text
    assert response.json()["date"] == touching
    # Overlapping only its own old slot is no conflict.
    response = await client.patch(f"/events/{second['id']}", json={"durationMinutes": 120})
    assert response.status_code == 200, response.text
    assert response.json()["endsAt"] == iso(start + timedelta(minutes=180))


async def test_patch_capacity_below_confirmed_is_409(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=5)
    for person in await attendees(client, 3):
        assert (await register(client, event["id"], person["id"])).status_code == 201
    before = await get_event(client, event["id"])
    response = await client.patch(f"/events/{event['id']}", json={"maxAttendees": 2})
    assert_problem(response, 409, "capacity_below_registrations")
    assert await get_event(client, event["id"]) == before
    response = await client.patch(f"/events/{event['id']}", json={"maxAttendees": 3})
    assert response.status_code == 200, response.text
    patched = response.json()
    assert (patched["maxAttendees"], patched["registeredCount"], patched["availableSpots"]) == (
        3, 3, 0)
    assert patched["version"] > before["version"]


async def test_raising_capacity_promotes_the_waitlist_in_order(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    people = await attendees(client, 4)
    registrations = []
    for person in people:
        response = await register(client, event["id"], person["id"], waitlist=True)
        assert response.status_code == 201, response.text
        registrations.append(response.json())
    assert [r["status"] for r in registrations] == ["confirmed"] + ["waitlisted"] * 3
    before = await get_event(client, event["id"])
    response = await client.patch(f"/events/{event['id']}", json={"maxAttendees": 3})
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["maxAttendees"] == 3
    assert patched["registeredCount"] == 3
    assert patched["availableSpots"] == 0
    assert patched["waitlistCount"] == 1
    assert patched["version"] > before["version"]
    assert await get_event(client, event["id"]) == patched
    states = []
    for registration in registrations:
        r = await client.get(f"/registrations/{registration['id']}")
        assert r.status_code == 200, r.text
        states.append((r.json()["status"], r.json()["waitlistPosition"]))
    assert states == [("confirmed", None), ("confirmed", None), ("confirmed", None),
                      ("waitlisted", 1)]


async def test_patch_unknown_event_is_404(client: httpx.AsyncClient):
    response = await client.patch(f"/events/{uuid.uuid4()}", json={"name": "Ghost"})
    assert_problem(response, 404, "not_found")


async def test_version_rises_by_one_per_registration(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=3)
    for n, person in enumerate(await attendees(client, 2), start=1):
        response = await register(client, event["id"], person["id"])
        assert response.status_code == 201, response.text
        now = await get_event(client, event["id"])
        assert now["version"] == event["version"] + n
        assert (now["registeredCount"], now["availableSpots"]) == (n, 3 - n)


async def test_version_rises_by_one_per_cancellation(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=3)
    person = await create_attendee(client)
    response = await register(client, event["id"], person["id"])
    assert response.status_code == 201, response.text
    before = await get_event(client, event["id"])
    cancel = await client.delete(f"/registrations/{response.json()['id']}",
                                 params={"token": response.json()["manageToken"]})
    assert cancel.status_code == 204, cancel.text
    after = await get_event(client, event["id"])
    assert after["version"] == before["version"] + 1
    assert (after["registeredCount"], after["availableSpots"]) == (0, 3)


# --- DELETE -----------------------------------------------------------------------


async def test_delete_removes_the_event_and_its_registrations(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    first, second = await attendees(client, 2)
    confirmed = (await register(client, event["id"], first["id"])).json()
    waitlisted = (await register(client, event["id"], second["id"], waitlist=True)).json()
    assert (confirmed["status"], waitlisted["status"]) == ("confirmed", "waitlisted")

    response = await client.delete(f"/events/{event['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"/events/{event['id']}"), 404, "not_found")
    for registration in (confirmed, waitlisted):
        gone = await client.get(f"/registrations/{registration['id']}")
        assert_problem(gone, 404, "not_found")
    assert (await listed(client, location=event["location"]))["total"] == 0
    assert_problem(await client.delete(f"/events/{event['id']}"), 404, "not_found")
    patch = await client.patch(f"/events/{event['id']}", json={"name": "Back"})
    assert_problem(patch, 404, "not_found")
    # The attendees themselves stay.
    assert (await client.get(f"/attendees/{first['id']}")).status_code == 200
    again = await register(client, event["id"], first["id"])
    assert_problem(again, 404, "not_found")


async def test_delete_unknown_event_is_404(client: httpx.AsyncClient):
    assert_problem(await client.delete(f"/events/{uuid.uuid4()}"), 404, "not_found")


# --- GET /events ------------------------------------------------------------------


async def make_tagged(
    client: httpx.AsyncClient, token: str, starts: list[datetime], **fields: Any
) -> list[dict[str, Any]]:
    return [
        await create_event(client, name=f"Tagged {token} #{i}", date=iso(start), **fields)
        for i, start in enumerate(starts)
    ]


async def test_list_orders_by_date_then_id(client: httpx.AsyncClient):
    token = uuid.uuid4().hex
    base = at(days=70)
    starts = [base + timedelta(hours=5), base, base + timedelta(hours=2), base, base]
    made = await make_tagged(client, token, starts)
    page = await listed(client, search=token)
    assert page["total"] == 5
    expected = sorted(made, key=lambda e: (parse_time(e["date"]), uuid.UUID(e["id"])))
    assert [e["id"] for e in page["items"]] == [e["id"] for e in expected]
    assert page["items"] == expected


async def test_list_date_bounds_are_inclusive(client: httpx.AsyncClient):
    token = uuid.uuid4().hex
    t1, t2, t3 = at(days=71), at(days=72), at(days=73)
    e1, e2, e3 = await make_tagged(client, token, [t3, t1, t2])
    e1, e2, e3 = e2, e3, e1  # now in date order

    def ids(page: dict[str, Any]) -> list[str]:
        return [e["id"] for e in page["items"]]

    assert ids(await listed(client, search=token, startDate=iso(t2))) == [e2["id"], e3["id"]]
    assert ids(await listed(client, search=token, endDate=iso(t2))) == [e1["id"], e2["id"]]
    both = await listed(client, search=token, startDate=iso(t2), endDate=iso(t2))
    assert ids(both) == [e2["id"]]
    assert both["total"] == 1
    # One second off either bound excludes the event on it.
    just_after = iso(t2 + timedelta(seconds=1))
    assert ids(await listed(client, search=token, startDate=just_after)) == [e3["id"]]
    # The bounds take offsets too: t2 written in +02:00.
    shifted = (t2 + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"
    assert ids(await listed(client, search=token, endDate=shifted)) == [e1["id"], e2["id"]]
    empty = await listed(client, search=token, startDate=iso(t3 + timedelta(seconds=1)))
    assert (empty["items"], empty["total"]) == ([], 0)


async def test_list_date_bounds_take_plain_dates_as_whole_utc_days(client: httpx.AsyncClient):
    token = uuid.uuid4().hex
    day = at(days=79).date()
    first = datetime(day.year, day.month, day.day, tzinfo=UTC)
    before, start, end, after = await make_tagged(client, token, [
        first - timedelta(seconds=1),
        first,
        first + timedelta(days=1) - timedelta(milliseconds=1),
        first + timedelta(days=1),
    ])

    async def ids(**bounds: str) -> list[str]:
        return [e["id"] for e in (await listed(client, search=token, **bounds))["items"]]

    text = day.isoformat()  # 2027-03-01
    assert await ids(startDate=text) == [start["id"], end["id"], after["id"]]
    assert await ids(endDate=text) == [before["id"], start["id"], end["id"]]
    assert await ids(startDate=text, endDate=text) == [start["id"], end["id"]]
    # A plain date and a moment mix.
    assert await ids(startDate=iso(first - timedelta(seconds=1)), endDate=text) == [
        before["id"], start["id"], end["id"],
    ]


async def test_list_location_matches_the_normalized_place_exactly(client: httpx.AsyncClient):
    core = uuid.uuid4().hex[:8]
    place = f"Main  Hall {core}"
    event = await create_event(client, location=place)
    other = await create_event(client, location=f"Main Hall {core} Annex")
    for query in (place, f"main hall {core}", f"  MAIN\tHALL   {core.upper()} "):
        page = await listed(client, location=query)
        assert [e["id"] for e in page["items"]] == [event["id"]], query
        assert page["total"] == 1
    annex = await listed(client, location=f"main hall {core} annex")
    assert [e["id"] for e in annex["items"]] == [other["id"]]
    assert (await listed(client, location=f"Main Hall {core[:-1]}"))["total"] == 0


async def test_list_search_is_case_insensitive_over_name_and_description(
    client: httpx.AsyncClient,
):
    token = uuid.uuid4().hex[:12]
    by_name = await create_event(client, name=f"About {token.upper()} things",
                                 date=iso(at(days=74)))
    by_description = await create_event(client, name="Plain",
                                        description=f"talks about {token} too",
                                        date=iso(at(days=75)))
    await create_event(client, name=f"{token[:6]} only half", date=iso(at(days=76)))
    for query in (token, token.upper(), token[2:10].swapcase()):
        page = await listed(client, search=query)
        assert [e["id"] for e in page["items"]] == [by_name["id"], by_description["id"]], query
        assert page["total"] == 2


async def test_list_search_treats_wildcards_literally(client: httpx.AsyncClient):
    token = uuid.uuid4().hex[:12]
    literal = await create_event(client, name=f"{token} 100% fun")
    await create_event(client, name=f"{token} 1000 fun")
    await create_event(client, name=f"{token}_x")
    await create_event(client, name=f"{token}yx")
    page = await listed(client, search=f"{token} 100%")
    assert [e["id"] for e in page["items"]] == [literal["id"]]
    assert (await listed(client, search=f"{token}_x"))["total"] == 1


async def test_list_filters_combine(client: httpx.AsyncClient):
    token = uuid.uuid4().hex
    place = unique_location()
    early, late = at(days=77), at(days=78)
    await create_event(client, name=f"{token} a", location=place, date=iso(early))
    wanted = await create_event(client, name=f"{token} b", location=place, date=iso(late))
    await create_event(client, name=f"{token} c", date=iso(late))
    page = await listed(client, search=token, location=place, startDate=iso(late))
    assert [e["id"] for e in page["items"]] == [wanted["id"]]
    assert page["total"] == 1


async def test_list_pages_through_the_results(client: httpx.AsyncClient):
    token = uuid.uuid4().hex
    base = at(days=80)
    made = await make_tagged(client, token, [base + timedelta(hours=i) for i in range(5)])
    seen = []
    for number, size in ((1, 2), (2, 2), (3, 1)):
        page = await listed(client, search=token, page=number, limit=2)
        assert (page["page"], page["limit"], page["total"]) == (number, 2, 5)
        assert len(page["items"]) == size
        seen += [e["id"] for e in page["items"]]
    assert seen == [e["id"] for e in made]
    beyond = await listed(client, search=token, page=4, limit=2)
    assert (beyond["items"], beyond["total"], beyond["page"]) == ([], 5, 4)


async def test_list_defaults_and_limit_bounds(client: httpx.AsyncClient):
    page = await listed(client)
    assert set(page) == {"items", "total", "page", "limit"}
    assert (page["page"], page["limit"]) == (1, 20)
    assert len(page["items"]) <= 20
    assert isinstance(page["total"], int)
    for limit in (1, 100):
        assert (await listed(client, limit=limit))["limit"] == limit
    for bad in ({"limit": 0}, {"limit": 101}, {"page": 0}, {"page": -1}):
        body = assert_problem(await client.get("/events", params=bad), 400, "validation_failed")
        assert {e["field"] for e in body["errors"]} == set(bad)


# --- the most-registered event ----------------------------------------------------


async def test_most_registrations_on_the_shared_daemon(client: httpx.AsyncClient):
    # Other tests' events live here too: beat the current leader by one.
    leader = await client.get("/events/stats/most-registrations")
    needed = leader.json()["registeredCount"] + 1 if leader.status_code == 200 else 1
    event = await create_event(client, maxAttendees=needed)
    for person in await attendees(client, needed):
        response = await register(client, event["id"], person["id"])
        assert response.status_code == 201, response.text
    response = await client.get("/events/stats/most-registrations")
    assert response.status_code == 200, response.text
    top = response.json()
    assert top == await get_event(client, event["id"])
    assert top["registeredCount"] == needed


async def test_most_registrations_on_a_fresh_database(fresh_database_url: str, workdir: Path):
    daemon = await trio.to_thread.run_sync(DaemonProcess(fresh_database_url, workdir).start)
    try:
        async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as c:
            stats = "/events/stats/most-registrations"
            assert_problem(await c.get(stats), 404, "not_found")
            first = await create_event(c, maxAttendees=10, date=future(days=10))
            second = await create_event(c, maxAttendees=10, date=future(days=5))
            third = await create_event(c, maxAttendees=10, date=future(days=1))
            # No registrations anywhere: the tie goes to the earliest created.
            assert (await c.get(stats)).json()["id"] == first["id"]
            people = [await create_attendee(c) for _ in range(6)]
            for event, group in ((first, people[:2]), (second, people[2:5]),
                                 (third, people[:3])):
                for person in group:
                    response = await register(c, event["id"], person["id"])
                    assert response.status_code == 201, response.text
            # second and third both have 3; second was created first.
            top = (await c.get(stats)).json()
            assert top["id"] == second["id"]
            assert top["registeredCount"] == 3
            # One more for third puts it ahead.
            response = await register(c, third["id"], people[5]["id"])
            assert response.status_code == 201, response.text
            assert (await c.get(stats)).json()["id"] == third["id"]
            # Waitlisted registrations do not count.
            capped = await c.patch(f"/events/{first['id']}", json={"maxAttendees": 2})
            assert capped.status_code == 200, capped.text
            for person in people[2:6]:
                response = await register(c, first["id"], person["id"], waitlist=True)
                assert response.json()["status"] == "waitlisted"
            top = (await c.get(stats)).json()
            assert (top["id"], top["registeredCount"]) == (third["id"], 4)
            for event in (first, second, third):
                assert (await c.delete(f"/events/{event['id']}")).status_code == 204
            assert_problem(await c.get(stats), 404, "not_found")
    finally:
        code = await trio.to_thread.run_sync(daemon.stop)
    assert code == 0, daemon.log()
