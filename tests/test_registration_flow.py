"""The registration flow end to end: holds, confirms, offers, expiry, tokens, history.

Runs against the shared daemon (no admin tokens: owner actions need the
manage token), and one daemon of its own with admin tokens. Every event is
made by the test that uses it; holds and offers last 0.05 minutes (3 s)
where a test waits for them to expire, by following the registration until
the daemon's timer has released it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    assert_problem,
    create_attendee,
    create_event,
    mail_to,
    parse_time,
    person,
    register,
)
from tests.support import DaemonProcess, run_sql

SHORT_MINUTES = 0.05  # 3 s: the shortest hold or offer
EXPIRY_WAIT_SECONDS = 30
ADMIN_TOKEN = "flow-admin-token"
_LINK = re.compile(r"(https?://\S+/r/(?P<id>[0-9a-f-]{36})\?token=(?P<token>[A-Za-z0-9_-]+))")


async def made(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/registrations", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def hold(client: httpx.AsyncClient, event_id: str, attendee_id: str,
               **more: Any) -> dict[str, Any]:
    return await made(client, {"eventId": event_id, "attendeeId": attendee_id, "hold": True,
                               **more})


async def read(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def until_status(client: httpx.AsyncClient, registration_id: str,
                       status: str) -> dict[str, Any]:
    """The registration once the daemon has moved it to ``status``."""
    with trio.fail_after(EXPIRY_WAIT_SECONDS):
        while True:
            found = await read(client, f"/registrations/{registration_id}")
            if found["status"] == status:
                return found
            await trio.sleep(0.1)


def seats(event: dict[str, Any]) -> tuple[int, int, int, int]:
    return (event["registeredCount"], event["heldCount"], event["availableSpots"],
            event["waitlistCount"])


def link_in(message: Any) -> re.Match[str]:
    body = message.get_body(("plain",)).get_content()
    found = _LINK.search(body)
    assert found is not None, body
    return found


# --- holds and confirms ----------------------------------------------------------


async def test_a_hold_takes_a_seat_until_its_owner_confirms_it(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=2)
    attendee = await create_attendee(client)
    held = await hold(client, event["id"], attendee["id"])
    assert held["status"] == "held"
    assert len(held["manageToken"]) >= 22  # ≥ 128 bits, base64url
    expires = parse_time(held["expiresAt"])
    created = parse_time(held["createdAt"])
    assert abs((expires - created).total_seconds() - 15 * 60) < 1  # the default 15 minutes
    assert seats(await read(client, f"/events/{event['id']}")) == (0, 1, 1, 0)

    path = f"/registrations/{held['id']}/confirm"
    assert_problem(await client.post(path), 403, "forbidden")
    assert_problem(await client.post(path, params={"token": "not-it"}), 403, "forbidden")
    assert_problem(await client.post(path, headers={"Registration-Token": held["id"]}), 403,
                   "forbidden")
    confirmed = await client.post(path, headers={"Registration-Token": held["manageToken"]})
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert (body["status"], body["expiresAt"]) == ("confirmed", None)
    assert "manageToken" not in body
    # Answered without reading the row (the daemon made the hold): what a read finds.
    assert body == await read(client, f"/registrations/{held['id']}")
    event_after = await read(client, f"/events/{event['id']}")
    assert seats(event_after) == (1, 0, 1, 0)
    # Confirming again: 200, nothing changes.
    again = await client.post(path, params={"token": held["manageToken"]})
    assert again.status_code == 200
    assert again.json() == body
    assert (await read(client, f"/events/{event['id']}"))["version"] == event_after["version"]


async def test_holds_at_capacity_then_event_full(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    first, second = await create_attendee(client), await create_attendee(client)
    await hold(client, event["id"], first["id"])
    assert_problem(await register(client, event["id"], second["id"]), 409, "event_full")
    queued = await made(client, {"eventId": event["id"], "attendeeId": second["id"],
                                 "hold": True, "waitlist": True})
    assert (queued["status"], queued["waitlistPosition"]) == ("waitlisted", 1)
    assert_problem(await register(client, event["id"], first["id"]), 409, "already_registered")


async def test_a_hold_not_confirmed_in_time_expires_and_its_seat_is_released(
    client: httpx.AsyncClient
):
    event = await create_event(client, maxAttendees=1, holdMinutes=SHORT_MINUTES)
    assert event["holdMinutes"] == SHORT_MINUTES
    first, second = await create_attendee(client), await create_attendee(client)
    held = await hold(client, event["id"], first["id"])
    expired = await until_status(client, held["id"], "expired")
    assert expired["expiresAt"] is None
    assert parse_time(expired["updatedAt"]) >= parse_time(held["expiresAt"])
    assert seats(await read(client, f"/events/{event['id']}")) == (0, 0, 1, 0)
    assert_problem(await client.post(f"/registrations/{held['id']}/confirm",
                                     params={"token": held["manageToken"]}),
                   409, "hold_expired")
    # Its owner may register again: the expired one stays as history.
    again = await register(client, event["id"], first["id"])
    assert again.status_code == 201, again.text
    assert_problem(await register(client, event["id"], second["id"]), 409, "event_full")


async def test_a_confirm_after_expires_at_is_refused_even_before_the_timer(
    client: httpx.AsyncClient, database_url: str
):
    event = await create_event(client, maxAttendees=3)
    attendee = await create_attendee(client)
    held = await hold(client, event["id"], attendee["id"])
    # Past its deadline by the database's clock; the daemon's timer is 15 minutes away.
    await trio.to_thread.run_sync(lambda: run_sql(
        database_url, "UPDATE registrations SET expires_at = now() - interval '1 second'"
        " WHERE id = $1", uuid.UUID(held["id"])))
    assert_problem(await client.post(f"/registrations/{held['id']}/confirm",
                                     params={"token": held["manageToken"]}),
                   409, "hold_expired")
    assert (await read(client, f"/registrations/{held['id']}"))["status"] == "expired"
    assert seats(await read(client, f"/events/{event['id']}")) == (0, 0, 3, 0)


# --- cancel and history ------------------------------------------------------------


async def test_cancel_needs_the_token_and_keeps_the_registration_as_history(
    client: httpx.AsyncClient
):
    event = await create_event(client, maxAttendees=2)
    attendee = await create_attendee(client)
    mine = await made(client, {"eventId": event["id"], "attendeeId": attendee["id"]})
    path = f"/registrations/{mine['id']}"
    problem = assert_problem(await client.delete(path), 403, "forbidden")
    assert mine["manageToken"] not in problem["detail"]
    assert_problem(await client.delete(path, params={"token": "x" * 43}), 403, "forbidden")
    assert (await read(client, path))["status"] == "confirmed"

    assert (await client.delete(path, headers={"Registration-Token": mine["manageToken"]})
            ).status_code == 204
    cancelled = await read(client, path)
    assert cancelled["status"] == "cancelled"
    before = await read(client, f"/events/{event['id']}")
    assert seats(before) == (0, 0, 2, 0)
    # Cancelling a cancelled one: 204, nothing changes.
    assert (await client.delete(path, params={"token": mine["manageToken"]})).status_code == 204
    assert (await read(client, f"/events/{event['id']}"))["version"] == before["version"]
    # Lists show the active ones unless asked.
    assert (await read(client, f"/registrations/event/{event['id']}"))["items"] == []
    history = await read(client, f"/registrations/event/{event['id']}?status=cancelled")
    assert [i["id"] for i in history["items"]] == [mine["id"]]
    # And the attendee may register again.
    assert (await register(client, event["id"], attendee["id"])).status_code == 201


async def test_a_registration_read_by_id_shows_no_token_and_no_email(
    client: httpx.AsyncClient
):
    event = await create_event(client)
    attendee = await create_attendee(client)
    mine = await made(client, {"eventId": event["id"], "attendeeId": attendee["id"]})
    shown = await client.get(f"/registrations/{mine['id']}")
    assert "manageToken" not in shown.json()
    assert mine["manageToken"] not in shown.text
    assert attendee["email"] not in shown.text


# --- offers ------------------------------------------------------------------------


async def test_a_freed_seat_is_offered_and_rolls_on_when_unclaimed(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1, offerMinutes=SHORT_MINUTES)
    people = [await create_attendee(client) for _ in range(3)]
    seat = await made(client, {"eventId": event["id"], "attendeeId": people[0]["id"]})
    queued = [await made(client, {"eventId": event["id"], "attendeeId": p["id"],
                                  "waitlist": True}) for p in people[1:]]
    assert [q["status"] for q in queued] == ["waitlisted", "waitlisted"]

    assert (await client.delete(f"/registrations/{seat['id']}",
                                params={"token": seat["manageToken"]})).status_code == 204
    offer = await read(client, f"/registrations/{queued[0]['id']}")
    assert offer["status"] == "offered"
    assert offer["expiresAt"] is not None
    assert seats(await read(client, f"/events/{event['id']}")) == (0, 1, 0, 1)

    # Unclaimed, it expires and the next in line is offered.
    await until_status(client, queued[0]["id"], "expired")
    next_offer = await until_status(client, queued[1]["id"], "offered")
    assert next_offer["expiresAt"] is not None
    # The next one claims it with the token it got when it joined the waitlist.
    claimed = await client.post(f"/registrations/{queued[1]['id']}/confirm",
                                params={"token": queued[1]["manageToken"]})
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["status"] == "confirmed"
    assert seats(await read(client, f"/events/{event['id']}")) == (1, 0, 0, 0)


async def test_raising_capacity_offers_seats(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1, offerMinutes=60)
    people = [await create_attendee(client) for _ in range(3)]
    await made(client, {"eventId": event["id"], "attendeeId": people[0]["id"]})
    queued = [await made(client, {"eventId": event["id"], "attendeeId": p["id"],
                                  "waitlist": True}) for p in people[1:]]
    raised = await client.patch(f"/events/{event['id']}", json={"maxAttendees": 2})
    assert raised.status_code == 200, raised.text
    assert seats(raised.json()) == (1, 1, 0, 1)
    assert (await read(client, f"/registrations/{queued[0]['id']}"))["status"] == "offered"
    # Capacity cannot go under the seats taken, held ones included.
    assert_problem(await client.patch(f"/events/{event['id']}", json={"maxAttendees": 1}),
                   409, "capacity_below_registrations")


# --- inline attendees and confirmation by email ------------------------------------


async def test_an_inline_attendee_is_made_or_found_by_email(
    client: httpx.AsyncClient, daemon: DaemonProcess
):
    mailbox = daemon.workdir / "var" / "mail"
    event = await create_event(client, name="Inline", maxAttendees=5)
    address = f"new.{uuid.uuid4().hex[:10]}@example.com"
    fresh = await made(client, {"eventId": event["id"],
                                "attendee": {"name": "New Person", "email": address}})
    assert fresh["status"] == "confirmed"
    assert fresh["manageToken"]
    attendee = await read(client, f"/attendees/{fresh['attendeeId']}")
    assert attendee["email"] == address

    # Someone else names an address that already has an attendee: the registration
    # starts held, and only that address gets the token.
    known = await person(client)
    other = await create_event(client, name="Inline Two", maxAttendees=5)
    by_email = await made(client, {
        "eventId": other["id"], "hold": False,
        "attendee": {"name": "Someone", "email": known["email"].upper()}})
    assert by_email["attendeeId"] == known["id"]
    assert by_email["status"] == "held"
    assert "manageToken" not in by_email
    message = await mail_to(mailbox, known["email"], "Confirm your place: Inline Two")
    link = link_in(message)
    assert link["id"] == by_email["id"]
    assert link["token"] not in (await client.get(f"/registrations/{by_email['id']}")).text
    confirmed = await client.post(f"/registrations/{by_email['id']}/confirm",
                                  params={"token": link["token"]})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed"


async def test_under_email_confirmation_only_the_emailed_link_confirms(
    client: httpx.AsyncClient, daemon: DaemonProcess, database_url: str
):
    mailbox = daemon.workdir / "var" / "mail"
    event = await create_event(client, name="By Mail", maxAttendees=5, confirmation="email")
    assert event["confirmation"] == "email"
    attendee = await person(client)
    held = await made(client, {"eventId": event["id"], "attendeeId": attendee["id"]})
    assert held["status"] == "held"
    assert "manageToken" not in held
    message = await mail_to(mailbox, attendee["email"], "Confirm your place: By Mail")
    link = link_in(message)
    assert link[1].startswith("http://127.0.0.1:3000/r/")  # server.public_url's default
    assert "Confirm by" in message.get_body(("plain",)).get_content()
    confirmed = await client.post(f"/registrations/{held['id']}/confirm",
                                  params={"token": link["token"]})
    assert confirmed.status_code == 200, confirmed.text
    await mail_to(mailbox, attendee["email"], "You're registered: By Mail")
    # Once sent, a message's token is no longer in the outbox.
    with trio.fail_after(EXPIRY_WAIT_SECONDS):
        while True:
            rows = await trio.to_thread.run_sync(lambda: run_sql(
                database_url, "SELECT sent_at IS NOT NULL AS sent,"
                " payload #> '{registration,token}' AS token FROM email_outbox"
                " WHERE recipient = $1", attendee["email"]))
            if all(r["sent"] for r in rows):
                break
            await trio.sleep(0.1)
    assert [r["token"] for r in rows] == [None, None]


# --- bad input ------------------------------------------------------------------------


async def test_bad_flow_input_is_400_and_writes_nothing(client: httpx.AsyncClient,
                                                        database_url: str):
    event = await create_event(client, maxAttendees=1)
    attendee = await create_attendee(client)
    address = f"never.{uuid.uuid4().hex[:10]}@example.com"
    inline = {"name": "Never", "email": address}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"eventId": event["id"], "attendeeId": attendee["id"], "hold": "yes"}, "hold"),
        ({"eventId": event["id"], "attendeeId": attendee["id"], "hold": 1}, "hold"),
        ({"eventId": event["id"], "attendeeId": attendee["id"], "hold": None}, "hold"),
        ({"eventId": event["id"]}, "attendeeId"),
        ({"eventId": event["id"], "attendeeId": attendee["id"], "attendee": inline},
         "attendee"),
        ({"eventId": event["id"], "attendee": {"name": "Never"}}, "attendee.email"),
        ({"eventId": event["id"], "attendee": {**inline, "email": "not-an-email"}},
         "attendee.email"),
        ({"eventId": event["id"], "attendee": {**inline, "extra": 1}}, "attendee.extra"),
    ]
    for body, field in cases:
        problem = assert_problem(await client.post("/registrations", json=body), 400,
                                 "validation_failed")
        assert field in {e["field"] for e in problem["errors"]}, (body, problem)
    for fields, field in [({"holdMinutes": 0}, "holdMinutes"),
                          ({"holdMinutes": 1441}, "holdMinutes"),
                          ({"holdMinutes": True}, "holdMinutes"),
                          ({"offerMinutes": 0.01}, "offerMinutes"),
                          ({"offerMinutes": -1}, "offerMinutes"),
                          ({"offerMinutes": 10081}, "offerMinutes"),
                          ({"confirmation": "maybe"}, "confirmation")]:
        for response in (
            await client.post("/events", json={"name": "Bad", "date": event["date"],
                                               "location": "Nowhere 1", "maxAttendees": 1,
                                               **fields}),
            await client.patch(f"/events/{event['id']}", json=fields),
        ):
            problem = assert_problem(response, 400, "validation_failed")
            assert field in {e["field"] for e in problem["errors"]}, (fields, problem)
    # Nothing was written: no registration, no attendee for the inline address.
    assert seats(await read(client, f"/events/{event['id']}")) == (0, 0, 1, 0)
    rows = await trio.to_thread.run_sync(lambda: run_sql(
        database_url, "SELECT count(*) AS n FROM attendees WHERE email = $1", address))
    assert rows[0]["n"] == 0
    # An unknown event makes no attendee either.
    assert_problem(await client.post("/registrations", json={
        "eventId": str(uuid.uuid4()), "attendee": inline}), 404, "not_found")
    rows = await trio.to_thread.run_sync(lambda: run_sql(
        database_url, "SELECT count(*) AS n FROM attendees WHERE email = $1", address))
    assert rows[0]["n"] == 0


async def test_confirm_and_cancel_of_unknown_registrations_are_404(client: httpx.AsyncClient):
    unknown = uuid.uuid4()
    assert_problem(await client.post(f"/registrations/{unknown}/confirm"), 404, "not_found")
    assert_problem(await client.delete(f"/registrations/{unknown}"), 404, "not_found")
    assert_problem(await client.post("/registrations/not-a-uuid/confirm"), 404, "not_found")


async def test_confirming_a_waitlisted_registration_is_409_not_held(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    first, second = await create_attendee(client), await create_attendee(client)
    await made(client, {"eventId": event["id"], "attendeeId": first["id"]})
    queued = await made(client, {"eventId": event["id"], "attendeeId": second["id"],
                                 "waitlist": True})
    assert_problem(await client.post(f"/registrations/{queued['id']}/confirm",
                                     params={"token": queued["manageToken"]}),
                   409, "not_held")


# --- admin tokens --------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    daemon = DaemonProcess(database_url, tmp_path_factory.mktemp("flow-auth"),
                           auth={"admin_tokens": [ADMIN_TOKEN]}).start()
    yield daemon.url
    assert daemon.stop() == 0, daemon.log()


async def test_an_admin_token_acts_on_any_registration(guarded: str, tmp_path: Path):
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=guarded, timeout=30) as client:
        event = (await client.post("/events", headers=admin, json={
            "name": "Guarded", "date": "2099-01-01T10:00:00Z",
            "location": f"Hall {uuid.uuid4().hex[:8]}", "maxAttendees": 3})).json()
        people = [await create_attendee(client) for _ in range(2)]
        held = await hold(client, event["id"], people[0]["id"])
        kept = await made(client, {"eventId": event["id"], "attendeeId": people[1]["id"]})
        # Another token, or a wrong bearer, is no admin.
        wrong = {"Authorization": "Bearer nope"}
        assert_problem(await client.post(f"/registrations/{held['id']}/confirm",
                                         headers=wrong), 403, "forbidden")
        assert (await client.post(f"/registrations/{held['id']}/confirm", headers=admin)
                ).json()["status"] == "confirmed"
        assert (await client.delete(f"/registrations/{kept['id']}", headers=admin)
                ).status_code == 204
        assert (await read(client, f"/registrations/{kept['id']}"))["status"] == "cancelled"


# --- metrics -------------------------------------------------------------------------


def _flow_metrics(text: str) -> dict[tuple[str, str], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("eventd_holds_total", "eventd_offers_total"):
                found[(sample.name, sample.labels["event"])] = sample.value
    return found


async def test_metrics_count_holds_and_offers(client: httpx.AsyncClient):
    before = _flow_metrics((await client.get("/metrics")).text)
    event = await create_event(client, maxAttendees=1, offerMinutes=60)
    people = [await create_attendee(client) for _ in range(2)]
    held = await hold(client, event["id"], people[0]["id"])
    queued = await made(client, {"eventId": event["id"], "attendeeId": people[1]["id"],
                                 "waitlist": True})
    assert (await client.delete(f"/registrations/{held['id']}",
                                params={"token": held["manageToken"]})).status_code == 204
    assert (await client.post(f"/registrations/{queued['id']}/confirm",
                              params={"token": queued["manageToken"]})).status_code == 200
    after = _flow_metrics((await client.get("/metrics")).text)
    grown = {key: after[key] - before.get(key, 0) for key in after}
    assert grown[("eventd_holds_total", "created")] >= 1
    assert grown[("eventd_offers_total", "made")] >= 1
    assert grown[("eventd_offers_total", "claimed")] >= 1
    assert set(after) == {("eventd_holds_total", name) for name in ("created", "confirmed",
                                                                    "expired")} | {
        ("eventd_offers_total", name) for name in ("made", "claimed", "expired")}
