"""Tickets and check-in, end to end: the real daemon over real sockets.

A confirmed registration's ticket verifies with PyJWT against the daemon's
``/.well-known/jwks.json``; ``POST /checkins`` lets it in once — also when it
is scanned twenty times at once, and across two daemons on one database —
and refuses tampered tickets, another deployment's, and those of
registrations no longer confirmed. The event's ``checkedInCount`` follows, in
its JSON and its stream. Each daemon here has its own admin and door tokens.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import trio
from trio_websocket import open_websocket_url

from eventd.http.tickets import qr_svg
from eventd.tickets import Ticket, load_or_create_key
from tests.conftest import (
    assert_problem,
    create_attendee,
    create_event,
    parse_time,
    register,
)
from tests.support import DaemonProcess, next_message, run_sql, ws_url
from tests.test_redis import RedisServer

ADMIN = "admin-token-for-checkins"
DOOR = "door-token-for-checkins"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
AT_DOOR = {"Authorization": f"Bearer {DOOR}"}
SCANS_AT_ONCE = 20


def _daemon(
    database_url: str, workdir: Path, key_file: Path, **sections: dict[str, Any]
) -> DaemonProcess:
    return DaemonProcess(
        database_url, workdir,
        auth={"admin_tokens": [ADMIN], "checkin_tokens": [DOOR]},
        tickets={"key_file": str(key_file)},
        **sections,
    )


@pytest.fixture(scope="module")
def door(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    workdir = tmp_path_factory.mktemp("checkins")
    daemon = _daemon(database_url, workdir, workdir / "keys" / "ticket-key").start()
    yield daemon
    assert daemon.stop() == 0, daemon.log()


@pytest.fixture
async def client(door: DaemonProcess) -> Any:
    async with httpx.AsyncClient(base_url=door.url, timeout=30, headers=AS_ADMIN) as c:
        yield c


async def confirmed(client: httpx.AsyncClient, **event_fields: Any) -> tuple[dict, dict, dict]:
    """A new event, an attendee, and the attendee's confirmed registration."""
    event = await create_event(client, **event_fields)
    attendee = await create_attendee(client, "Zoë")
    response = await register(client, event["id"], attendee["id"])
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "confirmed"
    return event, attendee, response.json()


async def ticket_of(client: httpx.AsyncClient, registration_id: str) -> str:
    response = await client.get(f"/registrations/{registration_id}/ticket")
    assert response.status_code == 200, response.text
    token: str = response.json()["ticket"]
    return token


async def check_in(client: httpx.AsyncClient, ticket: str, **headers: str) -> httpx.Response:
    return await client.post("/checkins", json={"ticket": ticket}, headers=headers or AT_DOOR)


# --- the ticket -----------------------------------------------------------------------


async def test_a_ticket_verifies_with_pyjwt_against_the_published_keys(
    client: httpx.AsyncClient, door: DaemonProcess
):
    event, attendee, registration = await confirmed(client)
    response = await client.get(f"/registrations/{registration['id']}/ticket")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"ticket", "qr"}

    async with httpx.AsyncClient() as anyone:
        keys = await anyone.get(f"{door.url}/.well-known/jwks.json")
    assert keys.status_code == 200
    jwks = jwt.PyJWKSet.from_dict(keys.json())
    header = jwt.get_unverified_header(body["ticket"])
    assert header["alg"] == "EdDSA"
    claims = jwt.decode(body["ticket"], jwks[header["kid"]], algorithms=["EdDSA"])
    assert claims["sub"] == registration["id"]
    assert claims["eid"] == event["id"]
    assert claims["name"] == attendee["name"]
    assert abs(claims["iat"] - parse_time(registration["createdAt"]).timestamp()) <= 1
    # The same registration, the same ticket: it may be printed or mailed once.
    assert await ticket_of(client, registration["id"]) == body["ticket"]


async def test_the_qr_code_holds_exactly_the_ticket(client: httpx.AsyncClient):
    _event, _attendee, registration = await confirmed(client)
    body = (await client.get(f"/registrations/{registration['id']}/ticket")).json()
    prefix = "data:image/svg+xml;base64,"
    assert body["qr"].startswith(prefix)
    svg = base64.b64decode(body["qr"].removeprefix(prefix), validate=True)
    assert svg == qr_svg(body["ticket"])  # segno's code for exactly this string
    response = await client.get(
        f"/registrations/{registration['id']}/ticket", headers={"Accept": "image/svg+xml"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.content == svg


def test_the_key_file_is_made_by_the_daemon_with_mode_0600(door: DaemonProcess):
    key_file = door.workdir / "keys" / "ticket-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    published = httpx.get(f"{door.url}/.well-known/jwks.json").json()
    assert published == load_or_create_key(key_file).jwks()
    assert key_file.read_text().splitlines()[1] not in door.log()  # never logged


async def test_only_a_confirmed_registration_has_a_ticket(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    first, second = await create_attendee(client), await create_attendee(client)
    assert (await register(client, event["id"], first["id"])).status_code == 201
    waitlisted = await register(client, event["id"], second["id"], waitlist=True)
    assert waitlisted.json()["status"] == "waitlisted"
    response = await client.get(f"/registrations/{waitlisted.json()['id']}/ticket")
    assert_problem(response, 409, "ticket_not_valid")
    missing = await client.get(f"/registrations/{uuid.uuid4()}/ticket")
    assert_problem(missing, 404, "not_found")
    assert_problem(await client.get("/registrations/nope/ticket"), 404, "not_found")


async def test_a_ticket_needs_an_admin_or_its_owner(door: DaemonProcess, client: httpx.AsyncClient):
    _event, _attendee, registration = await confirmed(client)
    path = f"/registrations/{registration['id']}/ticket"
    async with httpx.AsyncClient(base_url=door.url) as anyone:
        for headers in ({}, AT_DOOR, {"Authorization": "Bearer wrong"}):
            body = assert_problem(await anyone.get(path, headers=headers), 403, "forbidden")
            assert DOOR not in body["detail"]


# --- checking in ------------------------------------------------------------------------


async def test_a_ticket_checks_in_once(client: httpx.AsyncClient):
    event, _attendee, registration = await confirmed(client)
    ticket = await ticket_of(client, registration["id"])

    first = await check_in(client, ticket)
    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"/registrations/{registration['id']}"
    body = first.json()
    shown = {k: v for k, v in registration.items() if k != "manageToken"}  # returned once
    assert body == {**shown, "checkedInAt": body["checkedInAt"]}
    assert parse_time(body["checkedInAt"]) >= parse_time(registration["createdAt"])

    for _ in range(2):
        again = assert_problem(await check_in(client, ticket), 409, "already_checked_in")
        assert again["checkedInAt"] == body["checkedInAt"]  # the first time, every time
    admin_again = await check_in(client, ticket, **AS_ADMIN)
    assert assert_problem(admin_again, 409, "already_checked_in")["checkedInAt"] == (
        body["checkedInAt"]
    )

    read = (await client.get(f"/events/{event['id']}")).json()
    assert read["checkedInCount"] == 1
    assert read["version"] == event["version"] + 2  # the registration, then the entry


async def test_twenty_scans_at_once_let_one_in(client: httpx.AsyncClient):
    event, _attendee, registration = await confirmed(client)
    ticket = await ticket_of(client, registration["id"])
    answers: list[httpx.Response] = []

    async def scan() -> None:
        answers.append(await check_in(client, ticket))

    async with trio.open_nursery() as nursery:
        for _ in range(SCANS_AT_ONCE):
            nursery.start_soon(scan)
    assert sorted(a.status_code for a in answers) == [201] + [409] * (SCANS_AT_ONCE - 1)
    [entry] = [a.json() for a in answers if a.status_code == 201]
    for refused in (a for a in answers if a.status_code == 409):
        assert assert_problem(refused, 409, "already_checked_in")["checkedInAt"] == (
            entry["checkedInAt"]
        )
    assert (await client.get(f"/events/{event['id']}")).json()["checkedInCount"] == 1


async def test_the_stream_carries_the_checked_in_count(
    client: httpx.AsyncClient, door: DaemonProcess
):
    # A name of its own: the list below finds this event among the module's.
    event, attendee, registration = await confirmed(client, name=f"Counted {uuid.uuid4()}")
    other = await create_attendee(client)
    second = (await register(client, event["id"], other["id"])).json()
    async with open_websocket_url(ws_url(door.url, f"/ws/events/{event['id']}")) as ws:
        snapshot = await next_message(ws)
        assert snapshot["type"] == "snapshot"
        assert snapshot["data"]["checkedInCount"] == 0
        for expected, reg in enumerate((registration, second), 1):
            response = await check_in(client, await ticket_of(client, reg["id"]))
            assert response.status_code == 201, response.text
            update = await next_message(ws)
            assert update["type"] == "eventCapacityUpdate"
            assert update["data"]["checkedInCount"] == expected
            assert update["data"]["registeredCount"] == 2
            assert update["seq"] == snapshot["seq"] + expected
    listed = (await client.get("/events", params={"search": event["name"]})).json()
    assert [e["checkedInCount"] for e in listed["items"]] == [2]
    assert attendee["name"] == "Zoë"


async def test_a_cancelled_registrations_ticket_stops_working_at_once(client: httpx.AsyncClient):
    event, _attendee, registration = await confirmed(client)
    ticket = await ticket_of(client, registration["id"])
    assert (await client.delete(f"/registrations/{registration['id']}")).status_code == 204
    assert_problem(await check_in(client, ticket), 409, "ticket_not_valid")
    assert (await client.get(f"/events/{event['id']}")).json()["checkedInCount"] == 0


async def test_a_deleted_events_ticket_is_not_valid(client: httpx.AsyncClient):
    event, _attendee, registration = await confirmed(client)
    ticket = await ticket_of(client, registration["id"])
    assert (await client.delete(f"/events/{event['id']}")).status_code == 204
    assert_problem(await check_in(client, ticket), 409, "ticket_not_valid")


async def test_tampered_and_foreign_tickets_are_not_valid(
    client: httpx.AsyncClient, tmp_path: Path
):
    event, attendee, registration = await confirmed(client)
    ticket = await ticket_of(client, registration["id"])
    header, claims, signature = ticket.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    foreign = load_or_create_key(tmp_path / "another-deployment").sign(
        Ticket(uuid.UUID(registration["id"]), uuid.UUID(event["id"]), attendee["name"], 1)
    )
    for bad in (f"{header}.{claims}.{flipped}", foreign, f"{header}.{claims}.", "hello",
                ticket[:-2]):
        body = assert_problem(await check_in(client, bad), 409, "ticket_not_valid")
        assert bad not in body["detail"]
    # The real one still gets in: nothing was written by the refusals.
    assert (await check_in(client, ticket)).status_code == 201


async def test_a_check_in_body_is_checked(client: httpx.AsyncClient):
    for body in ({}, {"ticket": ""}, {"ticket": 5}, {"ticket": "a.b.c", "extra": 1},
                 {"ticket": "x" * 5000}):
        response = await client.post("/checkins", json=body, headers=AT_DOOR)
        assert_problem(response, 400, "validation_failed")


async def test_the_door_token_checks_in_and_does_nothing_else(
    door: DaemonProcess, client: httpx.AsyncClient
):
    _event, _attendee, registration = await confirmed(client)
    ticket = await ticket_of(client, registration["id"])
    async with httpx.AsyncClient(base_url=door.url) as scanner:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": DOOR}):
            response = await scanner.post("/checkins", json={"ticket": ticket}, headers=headers)
            assert_problem(response, 401, "unauthorized")
        assert_problem(await scanner.get("/metrics", headers=AT_DOOR), 401, "unauthorized")
        create = await scanner.post("/events", headers=AT_DOOR, json={
            "name": "Door", "date": "2031-01-01T10:00:00Z", "location": "Gate",
            "maxAttendees": 3})
        assert_problem(create, 401, "unauthorized")
        entered = await scanner.post("/checkins", json={"ticket": ticket}, headers=AT_DOOR)
        assert entered.status_code == 201, entered.text


async def test_check_ins_are_counted_by_outcome(client: httpx.AsyncClient):
    _event, _attendee, registration = await confirmed(client)
    ticket = await ticket_of(client, registration["id"])
    await check_in(client, ticket)
    await check_in(client, ticket)
    await check_in(client, "not.a.ticket")
    metrics = (await client.get("/metrics")).text
    counted = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("eventd_checkins_total{")
    }
    assert counted["checked_in"] >= 1
    assert counted["already_checked_in"] >= 1
    assert counted["bad_ticket"] >= 1


# --- two daemons, one database, one key ---------------------------------------------


@pytest.mark.slow
async def test_twenty_scans_across_two_daemons_let_one_in(
    fresh_database_url: str, workdir: Path
):
    key_file = workdir / "shared-ticket-key"
    (workdir / "a").mkdir()
    (workdir / "b").mkdir()
    first = await trio.to_thread.run_sync(
        _daemon(fresh_database_url, workdir / "a", key_file).start)
    try:
        second = await trio.to_thread.run_sync(
            _daemon(fresh_database_url, workdir / "b", key_file).start)
        try:
            async with (
                httpx.AsyncClient(base_url=first.url, timeout=30, headers=AS_ADMIN) as a,
                httpx.AsyncClient(base_url=second.url, timeout=30, headers=AS_ADMIN) as b,
            ):
                assert (await a.get("/.well-known/jwks.json")).json() == (
                    await b.get("/.well-known/jwks.json")).json()
                event, _attendee, registration = await confirmed(a)
                ticket = await ticket_of(b, registration["id"])  # issued by the other one
                answers: list[httpx.Response] = []

                async def scan(door: httpx.AsyncClient) -> None:
                    answers.append(await check_in(door, ticket))

                async with trio.open_nursery() as nursery:
                    for n in range(SCANS_AT_ONCE):
                        nursery.start_soon(scan, (a, b)[n % 2])
                statuses = sorted(answer.status_code for answer in answers)
                assert statuses == [201] + [409] * (SCANS_AT_ONCE - 1)
                entered = [x.json()["checkedInAt"] for x in answers if x.status_code == 201]
                late = {x.json()["checkedInAt"] for x in answers if x.status_code == 409}
                assert late == set(entered)
                for door in (a, b):
                    read = (await door.get(f"/events/{event['id']}")).json()
                    assert read["checkedInCount"] == 1
        finally:
            assert second.stop() == 0, second.log()
    finally:
        assert first.stop() == 0, first.log()
    rows = await trio.to_thread.run_sync(
        run_sql, fresh_database_url,
        "SELECT e.checked_in_count, r.checked_in_at FROM events e"
        " JOIN registrations r ON r.event_id = e.id WHERE e.id = $1", uuid.UUID(event["id"]))
    assert [(row["checked_in_count"], row["checked_in_at"] is not None) for row in rows] == [
        (1, True)
    ]


# --- a key file that is no key ----------------------------------------------------------


def test_a_key_file_that_is_no_key_stops_the_daemon_naming_it(
    database_url: str, workdir: Path
):
    key_file = workdir / "ticket-key"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n")
    config = _daemon(database_url, workdir, key_file).config_path
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTD_")}
    done = subprocess.run(
        [sys.executable, "-m", "eventd", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=workdir, env=env, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"configuration error: tickets.key_file: {key_file}" in done.stderr
    assert "not really" not in done.stderr + done.stdout


@pytest.mark.slow
async def test_a_check_in_through_one_daemon_is_streamed_and_read_through_the_other(
    fresh_database_url: str, workdir: Path
):
    redis = RedisServer(workdir)
    redis.start()
    key_file = workdir / "shared-ticket-key"
    daemons = []
    try:
        for name in ("a", "b"):
            (workdir / name).mkdir()
            daemon = _daemon(fresh_database_url, workdir / name, key_file,
                             redis={"url": redis.url})
            daemons.append(await trio.to_thread.run_sync(daemon.start))
        a, b = daemons
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=30, headers=AS_ADMIN) as via_a,
            httpx.AsyncClient(base_url=b.url, timeout=30, headers=AS_ADMIN) as via_b,
        ):
            event, _attendee, first = await confirmed(via_a)
            other = await create_attendee(via_a)
            second = (await register(via_a, event["id"], other["id"])).json()
            with trio.fail_after(20):
                async with open_websocket_url(ws_url(b.url, f"/ws/events/{event['id']}")) as ws:
                    snapshot = await next_message(ws)
                    assert snapshot["data"]["checkedInCount"] == 0
                    entered = await check_in(via_a, await ticket_of(via_a, first["id"]))
                    assert entered.status_code == 201, entered.text
                    update = await next_message(ws)
                    assert update["type"] == "eventCapacityUpdate"
                    assert update["data"]["checkedInCount"] == 1
                    entered = await check_in(via_b, await ticket_of(via_b, second["id"]))
                    assert entered.status_code == 201, entered.text
                    assert (await next_message(ws))["data"]["checkedInCount"] == 2
            # Written through the shared cache before B answered: A reads it at once.
            for via in (via_a, via_b):
                assert (await via.get(f"/events/{event['id']}")).json()["checkedInCount"] == 2
    finally:
        for daemon in daemons:
            assert daemon.stop() == 0, daemon.log()
        redis.kill()
