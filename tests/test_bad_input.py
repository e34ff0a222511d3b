"""Bad requests get precise problem+json answers, and nothing is half-written.

Covers the bodies of POST /events, PATCH /events/{id}, POST /attendees and
POST /registrations, query strings, path ids, media types, body size, unknown
routes and methods. Runs against the shared daemon.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from eventd.errors import ECHO_MAX_CHARS
from tests.conftest import (
    assert_problem,
    create_attendee,
    create_event,
    future,
    unique_location,
)
from tests.support import DaemonProcess


def assert_invalid(response: httpx.Response, *fields: str) -> list[dict[str, Any]]:
    """400 validation_failed whose errors name exactly these fields."""
    body = assert_problem(response, 400, "validation_failed")
    errors: list[dict[str, Any]] = body["errors"]
    assert isinstance(errors, list)
    assert errors
    for error in errors:
        assert set(error) == {"field", "message"}
        assert isinstance(error["message"], str)
        assert error["message"]
    assert {e["field"] for e in errors} == set(fields), errors
    return errors


def event_body(**changes: Any) -> dict[str, Any]:
    body = {"name": "Bad input", "date": future(), "location": unique_location(),
            "maxAttendees": 10}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not OMIT}


OMIT = object()
# Zero-width space, right-to-left override, zero-width joiner, BOM: shows nothing.
INVISIBLE = "\u200b\u202e\u200d\ufeff"
# Requests the daemon refuses before reading their body close their connection:
# a keep-alive connection reused after such a refusal can wedge, which is
# test_keep_alive_connection_survives_refused_bodies' business, not these tests'.
CLOSE = {"Connection": "close"}
LONG_EMAIL = "x" * 60 + "@" + ".".join(["d" * 60] * 4) + ".com"  # 308 characters

# (description, changes, the field the error must name)
BAD_EVENT_FIELDS = [
    ("maxAttendees as a string", {"maxAttendees": "10"}, "maxAttendees"),
    ("maxAttendees as a bool", {"maxAttendees": True}, "maxAttendees"),
    ("maxAttendees as a fraction", {"maxAttendees": 10.5}, "maxAttendees"),
    ("maxAttendees null", {"maxAttendees": None}, "maxAttendees"),
    ("maxAttendees missing", {"maxAttendees": OMIT}, "maxAttendees"),
    ("maxAttendees 0", {"maxAttendees": 0}, "maxAttendees"),
    ("maxAttendees negative", {"maxAttendees": -5}, "maxAttendees"),
    ("maxAttendees 1000001", {"maxAttendees": 1_000_001}, "maxAttendees"),
    ("durationMinutes 0", {"durationMinutes": 0}, "durationMinutes"),
    ("durationMinutes 10081", {"durationMinutes": 10081}, "durationMinutes"),
    ("durationMinutes as a string", {"durationMinutes": "60"}, "durationMinutes"),
    ("durationMinutes as a bool", {"durationMinutes": False}, "durationMinutes"),
    ("name null", {"name": None}, "name"),
    ("name missing", {"name": OMIT}, "name"),
    ("name a number", {"name": 5}, "name"),
    ("name empty", {"name": ""}, "name"),
    ("name blank", {"name": "   \t "}, "name"),
    ("name 201 characters", {"name": "n" * 201}, "name"),
    ("description 5001 characters", {"description": "d" * 5001}, "description"),
    ("description null", {"description": None}, "description"),
    ("location blank", {"location": "   "}, "location"),
    ("location of zero-width and bidi characters", {"location": INVISIBLE}, "location"),
    ("location of invisible characters and spaces", {"location": " \u2060\t\u200e "},
     "location"),
    ("name of zero-width and bidi characters", {"name": INVISIBLE}, "name"),
    ("name of control characters", {"name": "\x01\x7f\x9f"}, "name"),
    ("location 201 characters", {"location": "l" * 201}, "location"),
    ("location missing", {"location": OMIT}, "location"),
    ("date missing", {"date": OMIT}, "date"),
    ("date in the past", {"date": "2020-01-01T10:00:00Z"}, "date"),
    ("date without an offset", {"date": "2099-01-01T10:00:00"}, "date"),
    ("date not a date", {"date": "next tuesday"}, "date"),
    ("date only a day", {"date": "2099-01-01"}, "date"),
    ("date a number", {"date": 4102444800}, "date"),
    ("unknown field", {"colour": "red"}, "colour"),
    ("read-only field", {"registeredCount": 3}, "registeredCount"),
    ("snake_case field", {"max_attendees": 10}, "max_attendees"),
]


@pytest.mark.parametrize(
    ("changes", "field"), [(c, f) for _, c, f in BAD_EVENT_FIELDS],
    ids=[d for d, _, _ in BAD_EVENT_FIELDS],
)
async def test_create_event_rejects_bad_fields(
    client: httpx.AsyncClient, changes: dict[str, Any], field: str
):
    body = event_body(**changes)
    assert_invalid(await client.post("/events", json=body), field)
    if field != "location":
        # Nothing half-written: the place is still empty.
        page = await client.get("/events", params={"location": body["location"]})
        assert page.status_code == 200
        assert (page.json()["items"], page.json()["total"]) == ([], 0)


async def test_create_event_names_every_bad_field(client: httpx.AsyncClient):
    response = await client.post("/events", json={
        "name": "", "date": "2020-01-01T00:00:00Z", "location": unique_location(),
        "maxAttendees": 0, "durationMinutes": 10081, "extra": 1})
    assert_invalid(response, "name", "date", "maxAttendees", "durationMinutes", "extra")


async def test_rejected_create_writes_nothing(client: httpx.AsyncClient):
    location = unique_location()
    for body in (
        event_body(location=location, maxAttendees=0),
        event_body(location=location, name="x" * 201),
        event_body(location=location, date="2020-01-01T00:00:00Z"),
    ):
        assert_problem(await client.post("/events", json=body), 400, "validation_failed")
    page = await client.get("/events", params={"location": location})
    assert page.status_code == 200
    assert (page.json()["items"], page.json()["total"]) == ([], 0)
    # And the place is free: a valid create at the same time succeeds.
    ok = await client.post("/events", json=event_body(location=location))
    assert ok.status_code == 201, ok.text


async def test_edge_values_are_accepted(client: httpx.AsyncClient):
    event = await create_event(client, name="n" * 200, description="d" * 5000,
                               location="l" * 190 + uuid.uuid4().hex[:10],
                               maxAttendees=1_000_000, durationMinutes=10080)
    assert len(event["name"]) == 200
    assert len(event["description"]) == 5000
    small = await create_event(client, maxAttendees=1, durationMinutes=1)
    assert (small["maxAttendees"], small["durationMinutes"]) == (1, 1)


# --- PATCH /events/{id} -----------------------------------------------------------

BAD_PATCHES = [
    ("maxAttendees as a string", {"maxAttendees": "10"}, "maxAttendees"),
    ("maxAttendees as a bool", {"maxAttendees": True}, "maxAttendees"),
    ("maxAttendees 0", {"maxAttendees": 0}, "maxAttendees"),
    ("maxAttendees 1000001", {"maxAttendees": 1_000_001}, "maxAttendees"),
    ("durationMinutes 0", {"durationMinutes": 0}, "durationMinutes"),
    ("durationMinutes 10081", {"durationMinutes": 10081}, "durationMinutes"),
    ("name null", {"name": None}, "name"),
    ("name blank", {"name": "  "}, "name"),
    ("name of zero-width and bidi characters", {"name": INVISIBLE}, "name"),
    ("location of zero-width and bidi characters", {"location": INVISIBLE}, "location"),
    ("name 201 characters", {"name": "n" * 201}, "name"),
    ("description 5001 characters", {"description": "d" * 5001}, "description"),
    ("location null", {"location": None}, "location"),
    ("date in the past", {"date": "2020-01-01T10:00:00Z"}, "date"),
    ("date without an offset", {"date": "2099-01-01T10:00:00"}, "date"),
    ("unknown field", {"nmae": "typo"}, "nmae"),
    ("read-only version", {"version": 99}, "version"),
    ("read-only id", {"id": str(uuid.uuid4())}, "id"),
]


@pytest.mark.parametrize(
    ("changes", "field"), [(c, f) for _, c, f in BAD_PATCHES],
    ids=[d for d, _, _ in BAD_PATCHES],
)
async def test_patch_event_rejects_bad_fields(
    client: httpx.AsyncClient, changes: dict[str, Any], field: str
):
    event = await create_event(client)
    # A valid change alongside must not slip through either.
    response = await client.patch(f"/events/{event['id']}",
                                  json={"description": "changed", **changes})
    assert_invalid(response, field)
    after = await client.get(f"/events/{event['id']}")
    assert after.json() == event


async def test_an_empty_patch_asks_for_a_field(client: httpx.AsyncClient):
    event = await create_event(client)
    response = await client.patch(f"/events/{event['id']}", json={})
    assert assert_invalid(response, "") == [
        {"field": "", "message": "send at least one field to change"}
    ]
    detail = response.json()["detail"]
    assert detail == "The request is not valid: send at least one field to change."
    assert (await client.get(f"/events/{event['id']}")).json() == event


async def test_a_body_that_is_not_an_object_is_named_without_a_field(
    client: httpx.AsyncClient,
):
    response = await client.post("/attendees", content=b"[]",
                                 headers={"Content-Type": "application/json"})
    assert_invalid(response, "")
    assert response.json()["detail"] == "The request is not valid: must be a JSON object."


# --- POST /attendees --------------------------------------------------------------

BAD_ATTENDEES = [
    ("email missing", {"name": "Ada"}, "email"),
    ("email null", {"name": "Ada", "email": None}, "email"),
    ("email a number", {"name": "Ada", "email": 7}, "email"),
    ("email without @", {"name": "Ada", "email": "ada.example.com"}, "email"),
    ("email with two @", {"name": "Ada", "email": "ada@@example.com"}, "email"),
    ("email without domain", {"name": "Ada", "email": "ada@"}, "email"),
    ("email empty", {"name": "Ada", "email": ""}, "email"),
    ("email over 254", {"name": "Ada", "email": LONG_EMAIL}, "email"),
    ("name missing", {"email": "EMAIL"}, "name"),
    ("name blank", {"name": " ", "email": "EMAIL"}, "name"),
    ("name of zero-width and bidi characters", {"name": INVISIBLE, "email": "EMAIL"}, "name"),
    ("name 201 characters", {"name": "n" * 201, "email": "EMAIL"}, "name"),
    ("name null", {"name": None, "email": "EMAIL"}, "name"),
    ("unknown field", {"name": "Ada", "email": "EMAIL", "phone": "1"}, "phone"),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in BAD_ATTENDEES],
    ids=[d for d, _, _ in BAD_ATTENDEES],
)
async def test_create_attendee_rejects_bad_fields(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
):
    email = f"bad.{uuid.uuid4().hex[:10]}@example.com"
    body = {k: (email if v == "EMAIL" else v) for k, v in body.items()}
    assert_invalid(await client.post("/attendees", json=body), field)
    # Nothing half-written: the email is still free.
    ok = await client.post("/attendees", json={"name": "Ada", "email": email})
    assert ok.status_code == 201, ok.text


async def test_email_of_exactly_254_characters_is_accepted(client: httpx.AsyncClient):
    local = uuid.uuid4().hex[:20]
    domain = ".".join(["d" * 60, "e" * 60, "f" * 60]) + ".com"  # 187 characters
    pad = 254 - len(local) - 1 - len(domain)
    email = local + "@" + "g" * (pad - 1) + "." + domain
    assert len(email) == 254
    response = await client.post("/attendees", json={"name": "Long", "email": email})
    assert response.status_code == 201, response.text
    assert response.json()["email"] == email


# --- POST /registrations ----------------------------------------------------------


async def test_create_registration_rejects_bad_fields(client: httpx.AsyncClient):
    event = await create_event(client, maxAttendees=1)
    person = await create_attendee(client)
    good = {"eventId": event["id"], "attendeeId": person["id"], "waitlist": False}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "eventId": "not-a-uuid"}, "eventId"),
        ({**good, "eventId": 12}, "eventId"),
        ({**good, "eventId": None}, "eventId"),
        ({**good, "attendeeId": "1234"}, "attendeeId"),
        ({"eventId": event["id"], "waitlist": True}, "attendeeId"),
        ({"attendeeId": person["id"]}, "eventId"),
        ({**good, "waitlist": "yes"}, "waitlist"),
        ({**good, "waitlist": 1}, "waitlist"),
        ({**good, "waitlist": None}, "waitlist"),
        ({**good, "status": "confirmed"}, "status"),
    ]
    for body, field in cases:
        assert_invalid(await client.post("/registrations", json=body), field)
    # Nothing was registered: the one spot is still free.
    after = (await client.get(f"/events/{event['id']}")).json()
    assert (after["registeredCount"], after["availableSpots"]) == (0, 1)
    ok = await client.post("/registrations", json=good)
    assert ok.status_code == 201, ok.text


# --- the body itself: JSON, shape, media type, size -------------------------------


async def targets(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    event = await create_event(client)
    return [
        ("POST", "/events"),
        ("PATCH", f"/events/{event['id']}"),
        ("POST", "/attendees"),
        ("POST", "/registrations"),
    ]


@pytest.mark.parametrize("raw", [
    b"{", b'{"name": "x",}', b"{'name': 'x'}", b"not json", b"", b'{"name": "x"} trailing',
    b"\xff\xfe{}",
], ids=["open-brace", "trailing-comma", "single-quotes", "words", "empty", "trailing-text",
        "bad-utf8"])
async def test_malformed_json_is_400_malformed_json(client: httpx.AsyncClient, raw: bytes):
    for method, path in await targets(client):
        response = await client.request(method, path, content=raw,
                                        headers={"Content-Type": "application/json"})
        assert_problem(response, 400, "malformed_json")


@pytest.mark.parametrize("raw", [b"[]", b'[{"name": "x"}]', b'"a string"', b"42", b"null",
                                 b"true"],
                         ids=["empty-array", "array", "string", "number", "null", "true"])
async def test_json_that_is_not_an_object_is_400(client: httpx.AsyncClient, raw: bytes):
    for method, path in await targets(client):
        response = await client.request(method, path, content=raw,
                                        headers={"Content-Type": "application/json"})
        body = assert_problem(response, 400, "validation_failed")
        assert body["errors"], body


@pytest.mark.parametrize(("content_type", "content"), [
    ("text/plain", b'{"name": "x"}'),
    ("application/x-www-form-urlencoded", b"name=x&maxAttendees=10"),
    ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="n"'
                                        b"\r\n\r\nx\r\n--b--\r\n"),
    ("application/xml", b"<event/>"),
    (None, b'{"name": "x"}'),
], ids=["text", "form", "multipart", "xml", "none"])
async def test_wrong_media_type_is_415(
    client: httpx.AsyncClient, content_type: str | None, content: bytes
):
    headers = {"Content-Type": content_type} if content_type else {}
    for method, path in await targets(client):
        response = await client.request(method, path, content=content,
                                        headers={**headers, **CLOSE})
        assert_problem(response, 415, "unsupported_media_type")


async def test_form_post_is_415(client: httpx.AsyncClient):
    response = await client.post("/attendees", data={"name": "Ada", "email": "a@example.com"},
                                 headers=CLOSE)
    assert_problem(response, 415, "unsupported_media_type")


async def test_json_with_a_charset_is_accepted(client: httpx.AsyncClient):
    body = json.dumps({"name": "Charset", "email": f"c.{uuid.uuid4().hex}@example.com"})
    response = await client.post("/attendees", content=body.encode(),
                                 headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201, response.text


def oversized(location: str) -> bytes:
    body = json.dumps({"name": "Huge", "description": "d" * 70_000, "date": future(),
                       "location": location, "maxAttendees": 10}).encode()
    assert len(body) > 64 * 1024
    return body


async def test_body_over_64_kib_is_413(client: httpx.AsyncClient):
    location = unique_location()
    for method, path in await targets(client):
        response = await client.request(method, path, content=oversized(location),
                                        headers={"Content-Type": "application/json", **CLOSE})
        assert_problem(response, 413, "payload_too_large")
    page = (await client.get("/events", params={"location": location})).json()
    assert page["total"] == 0


async def test_chunked_body_over_64_kib_is_413(client: httpx.AsyncClient):
    location = unique_location()
    data = oversized(location)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 8192):
            yield data[start:start + 8192]

    response = await client.post("/events", content=chunks(),
                                 headers={"Content-Type": "application/json", **CLOSE})
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")
    page = (await client.get("/events", params={"location": location})).json()
    assert page["total"] == 0


async def test_body_just_under_the_limit_is_not_413(client: httpx.AsyncClient):
    # 5000-character description and padding whitespace: under 64 KiB, valid.
    body = json.dumps({"name": "Padded", "description": "d" * 5000, "date": future(),
                       "location": unique_location(), "maxAttendees": 10})
    raw = (body[:-1] + " " * (60 * 1024 - len(body)) + "}").encode()
    assert 60 * 1024 <= len(raw) < 64 * 1024
    response = await client.post("/events", content=raw,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text


async def _raw_exchange(url: str, head: bytes, parts: list[tuple[float, bytes]]) -> bytes:
    """Send a request's head, then each part after its pause; everything the daemon answers."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    assert port is not None
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(head)
        for pause, data in parts:
            await trio.sleep(pause)
            await stream.send_all(data)
        answer = b""
        with trio.move_on_after(10):
            while chunk := await stream.receive_some():
                answer += chunk
        return answer


def _head(path: str, body_length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: eventd\r\nContent-Type: application/json\r\n"
            f"Content-Length: {body_length}\r\nConnection: close\r\n\r\n").encode()


async def test_body_arriving_in_pieces_is_read_whole(client: httpx.AsyncClient):
    body = json.dumps({"name": "Slow Sender", "email": f"{uuid.uuid4().hex}@slow.org"}).encode()
    answer = await _raw_exchange(str(client.base_url), _head("/attendees", len(body)),
                                 [(0.2, body[:10]), (0.2, body[10:25]), (0.2, body[25:])])
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 201 ", answer
    assert b"Slow Sender" in rest


@pytest.fixture
def impatient_daemon(fresh_database_url: str, workdir: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(fresh_database_url, workdir,
                           server={"request_timeout_seconds": 1}).start()
    yield daemon
    assert daemon.stop() == 0


@pytest.mark.parametrize("sent", ["part", "none"], ids=["part of it", "none of it"])
async def test_body_that_never_finishes_is_408_and_writes_nothing(
    impatient_daemon: DaemonProcess, sent: str
):
    body = json.dumps({"name": "Stalled", "email": "stalled@example.org"}).encode()
    started = trio.current_time()
    answer = await _raw_exchange(impatient_daemon.url, _head("/attendees", len(body) + 100),
                                 [(0, body)] if sent == "part" else [])
    waited = trio.current_time() - started
    head, _, problem = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"application/problem+json" in head
    assert json.loads(problem)["status"] == 408
    assert 0.9 <= waited < 5, waited  # the request deadline, then the answer
    async with httpx.AsyncClient(base_url=impatient_daemon.url) as fresh:
        found = await fresh.get("/attendees", params={"search": "stalled@example.org"})
    assert found.json()["total"] == 0


# --- path ids, routes, methods ----------------------------------------------------


@pytest.mark.parametrize("bad_id", ["abc", "123", "not-a-uuid-at-all", "0" * 35,
                                    str(uuid.uuid4()) + "0"])
async def test_non_uuid_ids_in_paths_are_404(client: httpx.AsyncClient, bad_id: str):
    json_headers = {"Content-Type": "application/json", **CLOSE}
    requests = [
        ("GET", f"/events/{bad_id}", None),
        ("PATCH", f"/events/{bad_id}", b'{"name": "x"}'),
        ("DELETE", f"/events/{bad_id}", None),
        ("GET", f"/attendees/{bad_id}", None),
        ("GET", f"/attendees/{bad_id}/registrations", None),
        ("DELETE", f"/attendees/{bad_id}", None),
        ("GET", f"/registrations/{bad_id}", None),
        ("DELETE", f"/registrations/{bad_id}", None),
        ("GET", f"/registrations/event/{bad_id}", None),
    ]
    for method, path, content in requests:
        response = await client.request(method, path, content=content,
                                        headers=json_headers if content else {})
        assert_problem(response, 404, "not_found")


# --- what a problem repeats of the request -----------------------------------------

HUGE = 10_000  # characters of client input that must not come back


def assert_cut_short(text: str, sent: str) -> None:
    """``text`` repeats at most ECHO_MAX_CHARS characters of ``sent``, with an ellipsis."""
    assert sent[:ECHO_MAX_CHARS] not in text
    assert sent[: ECHO_MAX_CHARS - 1] + "…" in text


@pytest.mark.parametrize("path", ["/events/{}", "/attendees/{}", "/attendees/{}/registrations",
                                  "/registrations/{}", "/registrations/event/{}",
                                  "/dashboard/{}", "/api/assets/{}"])
async def test_a_huge_unknown_id_is_not_echoed_whole(client: httpx.AsyncClient, path: str):
    huge = "x" * HUGE
    body = assert_problem(await client.get(path.format(huge)), 404, "not_found")
    assert_cut_short(body["detail"], huge)
    assert len(body["detail"]) < 2 * ECHO_MAX_CHARS


async def test_an_id_padded_to_a_huge_size_is_said_back_as_its_uuid(
    client: httpx.AsyncClient,
):
    # uuid.UUID takes any number of hyphens, so this is a well-formed id of nobody.
    missing = uuid.uuid4()
    padded = "-" * HUGE + missing.hex
    for method, path in [
        ("GET", f"/events/{padded}"),
        ("GET", f"/attendees/{padded}"),
        ("GET", f"/attendees/{padded}/registrations"),
        ("GET", f"/registrations/{padded}"),
        ("DELETE", f"/registrations/{padded}"),
    ]:
        body = assert_problem(await client.request(method, path), 404, "not_found")
        assert str(missing) in body["detail"], (method, path)
        assert len(body["detail"]) < 2 * ECHO_MAX_CHARS, (method, path)


async def test_huge_unknown_field_and_parameter_names_are_cut_short(
    client: httpx.AsyncClient,
):
    huge = "f" * HUGE
    response = await client.post("/attendees", json={"name": "Ada", "email": "ada@example.com",
                                                     huge: 1})
    assert_problem(response, 400, "validation_failed")
    [error] = response.json()["errors"]
    assert_cut_short(error["field"], huge)
    assert_cut_short(response.json()["detail"], huge)
    response = await client.get("/events", params={huge: "1"})
    assert_problem(response, 400, "validation_failed")
    [error] = response.json()["errors"]
    assert_cut_short(error["field"], huge)
    assert_cut_short(response.json()["detail"], huge)


async def test_a_huge_media_type_is_cut_short(client: httpx.AsyncClient):
    media_type = "text/" + "t" * HUGE
    response = await client.post("/attendees", content=b"{}",
                                 headers={"Content-Type": media_type, **CLOSE})
    body = assert_problem(response, 415, "unsupported_media_type")
    assert_cut_short(body["detail"], media_type)


async def test_a_long_reused_idempotency_key_is_cut_short(client: httpx.AsyncClient):
    key = "k" * 255  # the longest key there is
    for name in ("First", "Second"):
        email = f"{name.lower()}.{uuid.uuid4().hex[:10]}@example.com"
        response = await client.post("/attendees", json={"name": name, "email": email},
                                     headers={"Idempotency-Key": key})
    body = assert_problem(response, 409, "idempotency_key_reused")
    assert_cut_short(body["detail"], key)


@pytest.mark.parametrize("path", ["/nope", "/events/x/y", "/event", "/attendees/registrations/x",
                                  "/registrations/event"])
async def test_unknown_route_is_404_problem(client: httpx.AsyncClient, path: str):
    assert_problem(await client.get(path), 404, "not_found")


@pytest.mark.parametrize(("path", "status", "title"), [
    ("/nope", 404, "Not found"),  # werkzeug's own error, worded as the daemon's
    (f"/events/{uuid.uuid4()}", 404, "Not found"),
    ("/ws", 400, "Bad request"),  # not a WebSocket handshake
])
async def test_problem_titles_come_from_the_one_table(
    client: httpx.AsyncClient, path: str, status: int, title: str
):
    assert assert_problem(await client.get(path), status)["title"] == title


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient):
    event = await create_event(client)
    person = await create_attendee(client)
    for method, path in [
        ("PUT", "/events"),
        ("DELETE", "/events"),
        ("PATCH", "/events"),
        ("POST", f"/events/{event['id']}"),
        ("PUT", f"/events/{event['id']}"),
        ("PATCH", f"/attendees/{person['id']}"),
        ("PUT", "/attendees"),
        ("GET", "/registrations"),
        ("PATCH", f"/registrations/{uuid.uuid4()}"),
        ("POST", "/events/stats/most-registrations"),
    ]:
        response = await client.request(method, path, json={}, headers=CLOSE)
        assert assert_problem(response, 405, "method_not_allowed")["title"] == (
            "Method not allowed"
        )
    assert (await client.get(f"/events/{event['id']}")).json() == event


# --- query strings ----------------------------------------------------------------

BAD_QUERIES = [
    ("/events", {"page": "0"}, "page"),
    ("/events", {"page": "abc"}, "page"),
    ("/events", {"limit": "101"}, "limit"),
    ("/events", {"limit": "0"}, "limit"),
    ("/events", {"limit": "abc"}, "limit"),
    ("/events", {"limit": "1.5"}, "limit"),
    ("/events", {"sort": "name"}, "sort"),
    ("/events", {"startdate": "2030-01-01T00:00:00Z"}, "startdate"),
    ("/events", {"startDate": "yesterday"}, "startDate"),
    ("/events", {"startDate": "2030-13-01T00:00:00Z"}, "startDate"),
    ("/events", {"startDate": "2030-01-01T00:00:00"}, "startDate"),
    ("/events", {"endDate": "soon"}, "endDate"),
    ("/events", {"endDate": "2030-02-30"}, "endDate"),
    ("/events", {"startDate": "2030-1-01"}, "startDate"),
    ("/attendees", {"page": "0"}, "page"),
    ("/attendees", {"limit": "101"}, "limit"),
    ("/attendees", {"limit": "abc"}, "limit"),
    ("/attendees", {"name": "Ada"}, "name"),
    ("ATTENDEE/registrations", {"limit": "101"}, "limit"),
    ("ATTENDEE/registrations", {"status": "confirmed"}, "status"),
    ("EVENT", {"limit": "1001"}, "limit"),
    ("EVENT", {"status": "pending"}, "status"),
    ("EVENT", {"order": "asc"}, "order"),
]


@pytest.mark.parametrize(
    ("path", "params", "field"), BAD_QUERIES,
    ids=[f"{p}?{'&'.join(f'{k}={v}' for k, v in q.items())}" for p, q, _ in BAD_QUERIES],
)
async def test_bad_query_parameters_are_400(
    client: httpx.AsyncClient, path: str, params: dict[str, str], field: str
):
    if path.startswith("ATTENDEE"):
        person = await create_attendee(client)
        path = path.replace("ATTENDEE", f"/attendees/{person['id']}")
    elif path == "EVENT":
        event = await create_event(client)
        path = f"/registrations/event/{event['id']}"
    assert_invalid(await client.get(path, params=params), field)


async def test_several_query_errors_are_reported_together(client: httpx.AsyncClient):
    response = await client.get("/events", params={"page": "0", "limit": "500",
                                                   "startDate": "x", "bogus": "1"})
    assert_invalid(response, "page", "limit", "startDate", "bogus")


# --- the connection after a refused body ------------------------------------------


async def test_keep_alive_connection_survives_refused_bodies(client: httpx.AsyncClient):
    """A body the daemon refuses unread must not wedge the connection it came on.

    Each refusal below is answered before the body is read; the request after it
    reuses the same keep-alive connection and must be answered promptly. The
    fault this guards against is timing-dependent, hence the repetitions.
    """
    big = b'{"description": "' + b"d" * 70_000 + b'"}'
    refusals = [
        ("POST", "/events", b'{"name": "x"}', {"Content-Type": "text/plain"}, 415),
        ("PUT", "/events", b'{"name": "x"}', {"Content-Type": "application/json"}, 405),
        ("PATCH", "/events/123", b'{"name": "x"}', {"Content-Type": "application/json"}, 404),
        ("POST", "/attendees", big, {"Content-Type": "application/json"}, 413),
    ]
    async with httpx.AsyncClient(base_url=client.base_url, timeout=5,
                                 limits=httpx.Limits(max_connections=1)) as one:
        for round_ in range(60):
            for method, path, body, headers, status in refusals:
                refused = await one.request(method, path, content=body, headers=headers)
                assert refused.status_code == status
                try:
                    after = await one.get("/events/not-a-uuid")
                except httpx.TimeoutException:
                    pytest.fail(f"round {round_}: no answer within 5 s to the request"
                                f" after a {status} for {method} {path}")
                assert after.status_code == 404


async def test_text_the_database_cannot_store_is_refused(client: httpx.AsyncClient):
    attendee = await client.post("/attendees", json={"name": "A\x00B", "email": "nul@example.com"})
    assert_invalid(attendee, "name")
    search = await client.get("/events", params={"search": "x\x00y"})
    assert_invalid(search, "search")
    event = await client.post("/events", json=event_body(description="bad\x00byte"))
    assert_invalid(event, "description")


async def test_dates_at_the_end_of_time_are_refused(client: httpx.AsyncClient):
    response = await client.post("/events", json=event_body(
        date="9999-12-31T23:00:00Z", durationMinutes=120))
    assert_invalid(response, "date")


async def test_integers_in_queries_are_plain_ascii_digits(client: httpx.AsyncClient):
    for text in ("1_0", " 7", "٣", "+2"):
        assert_invalid(await client.get("/events", params={"limit": text}), "limit")
