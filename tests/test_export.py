"""Exports of an event's registrations and of the attendees, through the real daemon.

A daemon of this module's own, on a database of its own, holds one event with
100,000 registrations, put in with one SQL statement (``generate_series``):
the export is what is tested, not the registering. Every file is read whole
and parsed back with Python's own :mod:`csv` and :mod:`json`.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import trio

from tests.conftest import UTC_Z, assert_problem, future, unique_location
from tests.support import DaemonProcess, run_sql, scratch_database

ROWS = 100_000
WAITLISTED_EVERY = 10  # every tenth registration is on the waitlist
HEADER = ["id", "status", "attendeeName", "attendeeEmail", "createdAt", "updatedAt",
          "expiresAt", "checkedInAt"]
# Names people might choose, cycled over the attendees: spreadsheet formulas
# (OWASP's list of starts), and text that CSV must quote.
NAMES = [
    "Ada Lovelace", "=HYPERLINK(\"http://evil.example\",\"x\")", "+1+2", "-2+3", "@SUM(A1:A9)",
    "\tTabbed", "\rReturned", "Quote \"me\", please", "Two\nlines", "Zoë Ünïcode, 東京",
    "a=b", "'already quoted",
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
WAIT_SECONDS = 30


@pytest.fixture(scope="module")
def exported(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[DaemonProcess, str, str]
]:
    """(daemon, database URL, event id): an event with ROWS registrations."""
    with scratch_database(pg_admin_url) as db:
        daemon = DaemonProcess(db, tmp_path_factory.mktemp("export")).start()
        try:
            response = httpx.post(f"{daemon.url}/events", timeout=30, json={
                "name": "Export", "date": future(days=300), "location": unique_location(),
                "maxAttendees": 1_000_000})
            assert response.status_code == 201, response.text
            event_id = response.json()["id"]
            run_sql(
                db,
                "WITH people AS ("
                " INSERT INTO attendees (id, name, email)"
                " SELECT gen_random_uuid(), ($3::text[])[1 + n % cardinality($3::text[])],"
                "  'p' || n || '@bulk.example' FROM generate_series(1, $2) AS n"
                " RETURNING id, email"
                "), made AS ("
                " INSERT INTO registrations (id, event_id, attendee_id, status, seq, confirmed_at)"
                " SELECT gen_random_uuid(), $1, id, CASE WHEN n % $4 = 0 THEN 'waitlisted'"
                "  ELSE 'confirmed' END, n, now()"
                " FROM (SELECT id, split_part(substr(email, 2), '@', 1)::bigint AS n"
                "  FROM people) AS numbered"
                " RETURNING status"
                ") UPDATE events SET"
                " confirmed_count = (SELECT count(*) FROM made WHERE status = 'confirmed'),"
                " waitlist_count = (SELECT count(*) FROM made WHERE status = 'waitlisted'),"
                " registration_seq = $2 WHERE id = $1",
                uuid.UUID(event_id), ROWS, NAMES, WAITLISTED_EVERY,
            )
            yield daemon, db, event_id
        finally:
            assert daemon.stop() == 0, daemon.log()


@pytest.fixture
async def web(exported: tuple[DaemonProcess, str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=exported[0].url, timeout=120) as c:
        yield c


def csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


def original(name: str) -> str:
    """What a neutralised cell held."""
    return name[1:] if name.startswith("'") and name[1:].startswith(FORMULA_STARTS) else name


# --- the event's registrations ---------------------------------------------------------


async def test_csv_of_100_000_registrations_parses_back_whole(
    web: httpx.AsyncClient, exported: tuple[DaemonProcess, str, str]
):
    _, db, event_id = exported
    response = await web.get(f"/events/{event_id}/registrations/export")  # csv by default
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv; charset=utf-8")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="registrations-{event_id}.csv"')
    assert "content-length" not in response.headers  # streamed, not built whole
    assert response.content.endswith(b"\r\n")

    rows = csv_rows(response.content)
    assert rows[0] == HEADER
    rows = rows[1:]
    assert len(rows) == ROWS
    expected = await trio.to_thread.run_sync(lambda: run_sql(
        db, "SELECT r.id, r.status, a.name, a.email FROM registrations r"
        " JOIN attendees a ON a.id = r.attendee_id WHERE r.event_id = $1",
        uuid.UUID(event_id)))
    by_id = {str(r["id"]): r for r in expected}
    assert {row[0] for row in rows} == by_id.keys()
    # Confirmed first, then the waitlist; each in arrival order.
    statuses = [row[1] for row in rows]
    assert statuses == sorted(statuses)
    assert statuses.count("waitlisted") == ROWS // WAITLISTED_EVERY
    numbers = [int(row[3][1:].partition("@")[0]) for row in rows]
    cut = statuses.index("waitlisted")
    assert numbers[:cut] == sorted(numbers[:cut])
    assert numbers[cut:] == sorted(numbers[cut:])

    neutralised = 0
    for row in rows:
        record = by_id[row[0]]
        assert len(row) == len(HEADER)
        assert row[1] == record["status"]
        assert row[3] == record["email"]
        assert UTC_Z.match(row[4]), row[4]
        assert UTC_Z.match(row[5]), row[5]  # updatedAt
        assert row[6:] == ["", ""]  # neither held nor offered, not checked in
        name = record["name"]
        if name.startswith(FORMULA_STARTS):
            assert row[2] == "'" + name, (row[2], name)  # no spreadsheet runs it
            neutralised += 1
        else:
            assert row[2] == name  # quoting survived the round trip
        assert not row[2].startswith(FORMULA_STARTS)
    assert neutralised == sum(r["name"].startswith(FORMULA_STARTS) for r in expected) > 0


async def test_ndjson_of_one_status_has_one_object_per_line(
    web: httpx.AsyncClient, exported: tuple[DaemonProcess, str, str]
):
    _, _, event_id = exported
    response = await web.get(f"/events/{event_id}/registrations/export",
                             params={"format": "ndjson", "status": "waitlisted"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="registrations-{event_id}.ndjson"')
    lines = response.content.split(b"\n")
    assert lines[-1] == b""
    items = [json.loads(line) for line in lines[:-1]]
    assert len(items) == ROWS // WAITLISTED_EVERY
    for item in items:
        assert list(item) == HEADER
        assert item["status"] == "waitlisted"
        assert UTC_Z.match(item["createdAt"])
        assert UTC_Z.match(item["updatedAt"])
        assert item["expiresAt"] is item["checkedInAt"] is None
        assert original(item["attendeeName"]) == item["attendeeName"]  # values as they are
    assert {i["attendeeName"] for i in items} <= set(NAMES)
    assert any(i["attendeeName"].startswith(FORMULA_STARTS) for i in items)  # not neutralised


async def test_an_event_without_registrations_exports_its_header(client: httpx.AsyncClient):
    created = await client.post("/events", json={
        "name": "Empty", "date": future(), "location": unique_location(), "maxAttendees": 3})
    event_id = created.json()["id"]
    response = await client.get(f"/events/{event_id}/registrations/export")
    assert response.status_code == 200
    assert response.content == (",".join(HEADER) + "\r\n").encode()
    empty = await client.get(f"/events/{event_id}/registrations/export?format=ndjson")
    assert empty.status_code == 200
    assert empty.content == b""


async def test_bad_exports_are_refused(client: httpx.AsyncClient):
    created = await client.post("/events", json={
        "name": "Refusals", "date": future(), "location": unique_location(), "maxAttendees": 3})
    path = f"/events/{created.json()['id']}/registrations/export"
    for query, field in [("format=xlsx", "format"), ("format=", "format"),
                         ("status=gone", "status"), ("format=CSV", "format"),
                         ("page=2", "page")]:
        problem = assert_problem(await client.get(f"{path}?{query}"), 400, "validation_failed")
        assert [e["field"] for e in problem["errors"]] == [field], query
    assert_problem(await client.get(f"/events/{uuid.uuid4()}/registrations/export"), 404,
                   "not_found")
    assert_problem(await client.get("/events/not-a-uuid/registrations/export"), 404,
                   "not_found")
    assert_problem(await client.get("/attendees/export?format=pdf"), 400, "validation_failed")


async def test_a_reader_that_leaves_midway_leaves_nothing_open(
    web: httpx.AsyncClient, exported: tuple[DaemonProcess, str, str]
):
    daemon, db, event_id = exported
    # A plain socket: read the start of the file, then hang up.
    stream = await trio.open_tcp_stream("127.0.0.1", daemon.port)
    async with stream:
        await stream.send_all(
            f"GET /events/{event_id}/registrations/export HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n\r\n".encode()
        )
        start = await stream.receive_some(65536)
        assert start.startswith(b"HTTP/1.1 200 ")
    # The daemon stops reading rows for nobody: the cursor's transaction ends
    # and its connection goes back to the pool, idle.
    open_transactions = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND state <> 'idle' AND pid <> pg_backend_pid()"
    )
    with trio.fail_after(WAIT_SECONDS):
        while True:
            busy = (await trio.to_thread.run_sync(lambda: run_sql(db, open_transactions)))[0][0]
            if not busy:
                break
            await trio.sleep(0.1)
    response = await web.get(f"/events/{event_id}/registrations/export?status=confirmed")
    assert len(csv_rows(response.content)) == 1 + ROWS - ROWS // WAITLISTED_EVERY


# --- attendees ---------------------------------------------------------------------------


async def test_attendees_export_in_both_formats(
    web: httpx.AsyncClient, exported: tuple[DaemonProcess, str, str]
):
    _, db, _ = exported
    count = (await trio.to_thread.run_sync(
        lambda: run_sql(db, "SELECT count(*) FROM attendees")))[0][0]
    as_csv = await web.get("/attendees/export", params={"format": "csv"})
    assert as_csv.status_code == 200
    assert as_csv.headers["content-disposition"] == 'attachment; filename="attendees.csv"'
    rows = csv_rows(as_csv.content)
    assert rows[0] == ["id", "name", "email", "createdAt"]
    assert len(rows) == 1 + count
    assert all(not row[1].startswith(FORMULA_STARTS) for row in rows[1:])
    assert {original(row[1]) for row in rows[1:]} == set(NAMES)

    as_ndjson = await web.get("/attendees/export", params={"format": "ndjson"})
    assert as_ndjson.headers["content-disposition"] == 'attachment; filename="attendees.ndjson"'
    items: list[dict[str, Any]] = [json.loads(x) for x in as_ndjson.content.splitlines()]
    assert [i["id"] for i in items] == [row[0] for row in rows[1:]]  # the same order
    assert [(i["createdAt"], i["id"]) for i in items] == sorted(
        (i["createdAt"], i["id"]) for i in items)
    assert {i["name"] for i in items} == set(NAMES)
