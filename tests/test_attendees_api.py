"""/attendees end to end: create, read, list (order, search, pages), their registrations, delete.

Runs against the shared daemon; list tests isolate their attendees with a
unique token in the name or email.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import (
    UTC_Z,
    assert_problem,
    create_attendee,
    create_event,
    parse_time,
    register,
)


async def post_attendee(client: httpx.AsyncClient, name: str, email: str) -> httpx.Response:
    return await client.post("/attendees", json={"name": name, "email": email})


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- create and read ------------------------------------------------------------


async def test_create_answers_201_with_location_and_the_email_as_given(
    client: httpx.AsyncClient,
):
    email = f"Ada.Lovelace.{uuid.uuid4().hex[:8]}@Example.COM"
    response = await post_attendee(client, "Ada Lovelace", email)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].split(";")[0] == "application/json"
    attendee = response.json()
    assert set(attendee) == {"id", "name", "email", "createdAt"}
    uuid.UUID(attendee["id"])
    assert response.headers["location"] == f"/attendees/{attendee['id']}"
    assert attendee["name"] == "Ada Lovelace"
    assert attendee["email"] == email
    assert UTC_Z.match(attendee["createdAt"])
    assert await get_json(client, f"/attendees/{attendee['id']}") == attendee


async def test_email_is_unique_ignoring_case(client: httpx.AsyncClient):
    email = f"grace.{uuid.uuid4().hex[:8]}@example.com"
    assert (await post_attendee(client, "Grace", email)).status_code == 201
    for again in (email, email.upper(), email.capitalize()):
        body = assert_problem(await post_attendee(client, "Other", again), 409, "email_taken")
        assert body["detail"]
    # The refused ones were not written.
    page = await get_json(client, "/attendees", search=email)
    assert [a["email"] for a in page["items"]] == [email]


async def test_email_rule_refuses_local_and_reserved_domains(client: httpx.AsyncClient):
    # The rule the document describes (AttendeeCreate.email): special-use domains and
    # names without a dot cannot receive mail from the internet, so they are refused.
    token = uuid.uuid4().hex[:8]
    for email in (f"a{token}@localhost", f"+x{token}@host.test", f"x{token}@example.invalid",
                  f"x{token}@mail.local", f"x{token}@intranet"):
        response = await post_attendee(client, "Local", email)
        body = assert_problem(response, 400, "validation_failed")
        assert body["errors"] == [{"field": "email", "message": "must be a valid email address"}]
    # A plus-sign at the start of the local part is fine; the domain was the matter.
    accepted = await post_attendee(client, "Plus", f"+x{token}@host.example")
    assert accepted.status_code == 201, accepted.text


async def test_get_unknown_attendee_is_404(client: httpx.AsyncClient):
    missing = uuid.uuid4()
    body = assert_problem(await client.get(f"/attendees/{missing}"), 404, "not_found")
    assert str(missing) in body["detail"]


# --- GET /attendees ---------------------------------------------------------------


async def test_list_is_ordered_by_creation_and_searches_name_or_email(
    client: httpx.AsyncClient,
):
    token = uuid.uuid4().hex[:12]
    made = [
        (await post_attendee(client, f"Name {token} one", f"one.{uuid.uuid4().hex}@x.org")).json(),
        (await post_attendee(client, "Plain two", f"two.{token}@x.org")).json(),
        (await post_attendee(client, f"NAME {token.upper()} three",
                             f"three.{uuid.uuid4().hex}@x.org")).json(),
    ]
    assert all("id" in a for a in made), made
    for query in (token, token.upper(), token[3:9]):
        page = await get_json(client, "/attendees", search=query)
        assert page["items"] == made, query
        assert page["total"] == 3
    stamps = [(parse_time(a["createdAt"]), a["id"]) for a in made]
    assert stamps == sorted(stamps)
    by_email = await get_json(client, "/attendees", search=f"TWO.{token.upper()}@X")
    assert [a["id"] for a in by_email["items"]] == [made[1]["id"]]
    nothing = await get_json(client, "/attendees", search=f"{token}-nobody")
    assert (nothing["items"], nothing["total"]) == ([], 0)


async def test_list_pages_and_default_envelope(client: httpx.AsyncClient):
    token = uuid.uuid4().hex
    made = [await create_attendee(client, name=f"P{token}{i}") for i in range(5)]
    seen = []
    for number, size in ((1, 2), (2, 2), (3, 1)):
        page = await get_json(client, "/attendees", search=token, page=number, limit=2)
        assert (page["page"], page["limit"], page["total"]) == (number, 2, 5)
        assert len(page["items"]) == size
        seen += [a["id"] for a in page["items"]]
    assert seen == [a["id"] for a in made]
    beyond = await get_json(client, "/attendees", search=token, page=4, limit=2)
    assert (beyond["items"], beyond["total"]) == ([], 5)
    default = await get_json(client, "/attendees")
    assert set(default) == {"items", "total", "page", "limit"}
    assert (default["page"], default["limit"]) == (1, 20)
    assert default["total"] >= 5
    assert len(default["items"]) == min(20, default["total"])
    ordered = [(parse_time(a["createdAt"]), a["id"]) for a in default["items"]]
    assert [p[0] for p in ordered] == sorted(p[0] for p in ordered)
    body = assert_problem(await client.get("/attendees", params={"limit": 101}),
                          400, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["limit"]


# --- GET /attendees/{id}/registrations --------------------------------------------


async def test_registrations_of_an_attendee_carry_an_event_summary(client: httpx.AsyncClient):
    person = await create_attendee(client)
    other = await create_attendee(client)
    open_event = await create_event(client, name="Open one", maxAttendees=5)
    full_event = await create_event(client, name="Full one", maxAttendees=1,
                                    description="not in the summary")
    assert (await register(client, full_event["id"], other["id"])).status_code == 201
    confirmed = (await register(client, open_event["id"], person["id"])).json()
    waitlisted = (await register(client, full_event["id"], person["id"], waitlist=True)).json()

    page = await get_json(client, f"/attendees/{person['id']}/registrations")
    assert set(page) == {"items", "total", "page", "limit"}
    assert page["total"] == 2
    assert (page["page"], page["limit"]) == (1, 20)
    first, second = page["items"]
    for item, registration, event in ((first, confirmed, open_event),
                                      (second, waitlisted, full_event)):
        assert item["event"] == {"id": event["id"], "name": event["name"],
                                 "date": event["date"], "location": event["location"]}
        # As the 201 showed it, less the manage token (shown that once).
        assert {k: v for k, v in item.items() if k != "event"} == {
            k: v for k, v in registration.items() if k != "manageToken"}
    assert (first["status"], first["waitlistPosition"]) == ("confirmed", None)
    assert (second["status"], second["waitlistPosition"]) == ("waitlisted", 1)

    paged = await get_json(client, f"/attendees/{person['id']}/registrations",
                           page=2, limit=1)
    assert [i["id"] for i in paged["items"]] == [waitlisted["id"]]
    assert (paged["total"], paged["page"], paged["limit"]) == (2, 2, 1)


async def test_registrations_of_an_attendee_without_any_is_an_empty_page(
    client: httpx.AsyncClient,
):
    person = await create_attendee(client)
    page = await get_json(client, f"/attendees/{person['id']}/registrations")
    assert page == {"items": [], "total": 0, "page": 1, "limit": 20}


async def test_registrations_of_an_unknown_attendee_is_404(client: httpx.AsyncClient):
    response = await client.get(f"/attendees/{uuid.uuid4()}/registrations")
    assert_problem(response, 404, "not_found")


# --- DELETE -----------------------------------------------------------------------


async def test_delete_cancels_registrations_and_promotes_the_waitlist(
    client: httpx.AsyncClient,
):
    leaving, staying, queued, last = [await create_attendee(client) for _ in range(4)]
    event = await create_event(client, maxAttendees=2)
    also_waiting = await create_event(client, maxAttendees=1)
    regs = {}
    for person in (leaving, staying, queued, last):
        response = await register(client, event["id"], person["id"], waitlist=True)
        assert response.status_code == 201, response.text
        regs[person["id"]] = response.json()
    assert [regs[p["id"]]["status"] for p in (leaving, staying, queued, last)] == [
        "confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert (await register(client, also_waiting["id"], staying["id"])).status_code == 201
    elsewhere = (await register(client, also_waiting["id"], leaving["id"], waitlist=True)).json()
    assert elsewhere["status"] == "waitlisted"
    before = await get_json(client, f"/events/{event['id']}")

    response = await client.delete(f"/attendees/{leaving['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"/attendees/{leaving['id']}"), 404, "not_found")
    for gone in (regs[leaving["id"]], elsewhere):
        assert_problem(await client.get(f"/registrations/{gone['id']}"), 404, "not_found")

    after = await get_json(client, f"/events/{event['id']}")
    assert (after["registeredCount"], after["availableSpots"], after["waitlistCount"]) == (
        2, 0, 1)
    assert after["version"] > before["version"]
    promoted = await get_json(client, f"/registrations/{regs[queued['id']]['id']}")
    assert (promoted["status"], promoted["waitlistPosition"]) == ("confirmed", None)
    behind = await get_json(client, f"/registrations/{regs[last['id']]['id']}")
    assert (behind["status"], behind["waitlistPosition"]) == ("waitlisted", 1)

    other = await get_json(client, f"/events/{also_waiting['id']}")
    assert (other["registeredCount"], other["waitlistCount"]) == (1, 0)

    assert_problem(await client.delete(f"/attendees/{leaving['id']}"), 404, "not_found")


async def test_delete_frees_a_spot_for_a_new_registration(client: httpx.AsyncClient):
    leaving, newcomer = await create_attendee(client), await create_attendee(client)
    event = await create_event(client, maxAttendees=1)
    assert (await register(client, event["id"], leaving["id"])).status_code == 201
    assert_problem(await register(client, event["id"], newcomer["id"]), 409, "event_full")
    assert (await client.delete(f"/attendees/{leaving['id']}")).status_code == 204
    event_now = await get_json(client, f"/events/{event['id']}")
    assert (event_now["registeredCount"], event_now["availableSpots"]) == (0, 1)
    response = await register(client, event["id"], newcomer["id"])
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "confirmed"


async def test_delete_unknown_attendee_is_404(client: httpx.AsyncClient):
    assert_problem(await client.delete(f"/attendees/{uuid.uuid4()}"), 404, "not_found")
