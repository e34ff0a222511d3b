"""The admission queue over HTTP and WebSocket, against the real daemon.

Settings on create and PATCH, joining, reading a ticket, the opening's
ranking and the live ``queueUpdate`` on the event's stream. The database's
clock decides when a queue opens: tests whose queue opens a moment after they
begin wait for that moment (polling the daemon, under a deadline).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.conftest import assert_problem, create_event, parse_time
from tests.support import WAIT_SECONDS, DaemonProcess, next_message, ws_url

SETTINGS = {"ratePerMinute": 600, "tokenMinutes": 1}


def soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def join(client: httpx.AsyncClient, event_id: str) -> dict[str, Any]:
    response = await client.post(f"/events/{event_id}/queue")
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/events/{event_id}/queue/{ticket['ticketId']}"
    return ticket


async def read_ticket(client: httpx.AsyncClient, event_id: str, ticket: dict[str, Any]
                      ) -> dict[str, Any]:
    response = await client.get(f"/events/{event_id}/queue/{ticket['ticketId']}",
                                params={"token": ticket["token"]})
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def ranked(client: httpx.AsyncClient, event_id: str, ticket: dict[str, Any]
                 ) -> dict[str, Any]:
    """The ticket once it has a rank (the queue has opened), polled under a deadline."""
    with trio.fail_after(WAIT_SECONDS):
        while True:
            found = await read_ticket(client, event_id, ticket)
            if found["rank"] is not None:
                return found
            await trio.sleep(0.1)


# --- settings -------------------------------------------------------------------


async def test_sales_start_and_admission_are_set_shown_and_removed(client: httpx.AsyncClient):
    sales = "2031-05-01T10:00:00+02:00"
    event = await create_event(client, salesStartAt=sales,
                               admission={"ratePerMinute": 250, "tokenMinutes": 0.05})
    assert event["salesStartAt"] == "2031-05-01T08:00:00Z"
    assert event["admission"] == {"ratePerMinute": 250, "tokenMinutes": 0.05}
    assert (await client.get(f"/events/{event['id']}")).json()["admission"] == event["admission"]
    plain = await create_event(client)
    assert (plain["salesStartAt"], plain["admission"]) == (None, None)

    patched = await client.patch(f"/events/{event['id']}",
                                 json={"admission": {"ratePerMinute": 100000, "tokenMinutes": 120}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["admission"] == {"ratePerMinute": 100000, "tokenMinutes": 120}
    assert patched.json()["version"] == event["version"] + 1
    removed = await client.patch(f"/events/{event['id']}",
                                 json={"admission": None, "salesStartAt": None})
    assert removed.status_code == 200, removed.text
    assert (removed.json()["salesStartAt"], removed.json()["admission"]) == (None, None)
    assert_problem(await client.post(f"/events/{event['id']}/queue"), 404, "not_found")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"admission": {"ratePerMinute": 0, "tokenMinutes": 1}}, "admission.ratePerMinute"),
        ({"admission": {"ratePerMinute": 100001, "tokenMinutes": 1}}, "admission.ratePerMinute"),
        ({"admission": {"ratePerMinute": 10.5, "tokenMinutes": 1}}, "admission.ratePerMinute"),
        ({"admission": {"ratePerMinute": 10, "tokenMinutes": 0.04}}, "admission.tokenMinutes"),
        ({"admission": {"ratePerMinute": 10, "tokenMinutes": 120.01}}, "admission.tokenMinutes"),
        ({"admission": {"ratePerMinute": 10, "tokenMinutes": "5"}}, "admission.tokenMinutes"),
        ({"admission": {"ratePerMinute": 10}}, "admission.tokenMinutes"),
        ({"admission": {"ratePerMinute": 10, "tokenMinutes": 1, "x": 1}}, "admission.x"),
        ({"admission": 5}, "admission"),
        ({"salesStartAt": "tomorrow"}, "salesStartAt"),
        ({"salesStartAt": "2031-05-01T10:00:00"}, "salesStartAt"),
        ({"salesStartAt": 1700000000}, "salesStartAt"),
    ],
)
async def test_settings_out_of_range_are_refused_on_create_and_patch(
    client: httpx.AsyncClient, fields: dict[str, Any], field: str
):
    body = {"name": "Q", "date": "2031-06-01T10:00:00Z", "location": f"R {uuid.uuid4()}",
            "maxAttendees": 5, **fields}
    problem = assert_problem(await client.post("/events", json=body), 400, "validation_failed")
    assert field in [e["field"] for e in problem["errors"]]
    event = await create_event(client)
    problem = assert_problem(await client.patch(f"/events/{event['id']}", json=fields), 400,
                             "validation_failed")
    assert field in [e["field"] for e in problem["errors"]]
    assert (await client.get(f"/events/{event['id']}")).json() == event  # nothing half-written


# --- joining and reading --------------------------------------------------------


async def test_a_joiner_after_the_opening_is_ranked_and_admitted_at_once(
    client: httpx.AsyncClient,
):
    event = await create_event(client, admission=SETTINGS)  # no salesStartAt: open now
    ticket = await join(client, event["id"])
    assert ticket.keys() == {"ticketId", "token", "rank", "status", "admittedThrough",
                             "opensAt", "expiresAt"}
    assert len(ticket["token"]) == 43
    assert ticket["rank"] == 1
    assert ticket["status"] in ("waiting", "admitted")  # 10 a second: 0.1 s after opening
    with trio.fail_after(WAIT_SECONDS):
        while (found := await read_ticket(client, event["id"], ticket))["status"] != "admitted":
            assert found["status"] == "waiting"
            await trio.sleep(0.05)
    assert found.keys() == ticket.keys() - {"token"}
    assert found["admittedThrough"] >= 1
    expires = parse_time(found["expiresAt"]) - parse_time(found["opensAt"])
    assert timedelta(minutes=1) <= expires <= timedelta(minutes=1, seconds=1)


async def test_pre_sale_joiners_are_ranked_at_opening_in_random_order_then_arrivals(
    client: httpx.AsyncClient,
):
    event = await create_event(client, salesStartAt=soon(1.5),
                               admission={"ratePerMinute": 60, "tokenMinutes": 1})
    early = [await join(client, event["id"]) for _ in range(12)]
    assert {(t["rank"], t["status"], t["admittedThrough"]) for t in early} == {
        (None, "waiting", 0)}
    assert {t["opensAt"] for t in early} == {event["salesStartAt"]}
    first = await ranked(client, event["id"], early[0])
    ranks = [(await read_ticket(client, event["id"], t))["rank"] for t in early]
    assert sorted(ranks) == list(range(1, 13))
    assert first["rank"] == ranks[0]
    late = [await join(client, event["id"]) for _ in range(3)]
    assert [t["rank"] for t in late] == [13, 14, 15]
    assert all(t["status"] == "waiting" for t in late)  # one a second: not yet


async def test_ticket_refusals_are_clear_and_never_repeat_the_token(
    client: httpx.AsyncClient,
):
    event = await create_event(client, admission=SETTINGS)
    other = await create_event(client, admission=SETTINGS)
    mine, theirs = await join(client, event["id"]), await join(client, other["id"])
    path = f"/events/{event['id']}/queue/{mine['ticketId']}"

    wrong = assert_problem(await client.get(path, params={"token": theirs["token"]}), 403,
                           "admission_required")
    assert theirs["token"] not in wrong["detail"]
    for bad in ("x" * 43, "short", mine["token"] + "x", ""):
        assert_problem(await client.get(path, params={"token": bad}), 403, "admission_required")
    missing = assert_problem(await client.get(path), 400, "validation_failed")
    assert [e["field"] for e in missing["errors"]] == ["token"]
    assert_problem(await client.get(path, params={"token": mine["token"], "x": "1"}), 400,
                   "validation_failed")
    # Another event's ticket, an unknown one, ids that are not UUIDs: not found here.
    elsewhere = f"/events/{other['id']}/queue/{mine['ticketId']}"
    assert_problem(await client.get(elsewhere, params={"token": mine["token"]}), 404, "not_found")
    unknown = f"/events/{event['id']}/queue/{uuid.uuid4()}"
    assert_problem(await client.get(unknown, params={"token": mine["token"]}), 404, "not_found")
    assert_problem(await client.get(f"/events/{event['id']}/queue/nope",
                                    params={"token": mine["token"]}), 404, "not_found")
    # Joining an unknown event, or one without a queue.
    assert_problem(await client.post(f"/events/{uuid.uuid4()}/queue"), 404, "not_found")
    assert_problem(await client.post("/events/nope/queue"), 404, "not_found")
    plain = await create_event(client)
    assert_problem(await client.post(f"/events/{plain['id']}/queue"), 404, "not_found")
    assert (await read_ticket(client, event["id"], mine))["ticketId"] == mine["ticketId"]


async def test_joining_is_rate_limited_like_every_public_post(tmp_path: Path,
                                                              database_url: str):
    daemon = DaemonProcess(database_url, tmp_path,
                           limits={"requests_per_second_per_client": 2}).start()
    try:
        async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
            event = await create_event(client, admission=SETTINGS)  # takes one token
            answers = [await client.post(f"/events/{event['id']}/queue") for _ in range(3)]
        assert answers[0].status_code == 201
        assert_problem(answers[-1], 429, "rate_limited")
        assert int(answers[-1].headers["retry-after"]) >= 1
    finally:
        assert daemon.stop() == 0


# --- live -----------------------------------------------------------------------


async def test_the_stream_sends_queue_updates_after_the_snapshot_without_seq(
    client: httpx.AsyncClient, daemon: DaemonProcess,
):
    event = await create_event(client, salesStartAt=soon(1.0),
                               admission={"ratePerMinute": 60, "tokenMinutes": 1})
    for _ in range(5):
        await join(client, event["id"])
    url = ws_url(daemon.url, f"/ws/events/{event['id']}")
    async with open_websocket_url(url) as ws:
        snapshot = await next_message(ws)
        assert (snapshot["type"], snapshot["seq"]) == ("snapshot", event["version"])
        updates = [await next_message(ws) for _ in range(4)]
        for update in updates:
            assert update.keys() == {"type", "eventId", "at", "data"}
            assert (update["type"], update["eventId"]) == ("queueUpdate", event["id"])
            assert update["data"].keys() == {"admittedThrough", "waiting", "ranked"}
            data = update["data"]
            assert data["waiting"] == 5 - data["admittedThrough"]
        times = [parse_time(u["at"]) for u in updates]
        assert times == sorted(times)
        assert len(set(times)) == 4  # one a second
        throughs = [u["data"]["admittedThrough"] for u in updates]
        assert throughs == sorted(throughs)
        # A second subscriber gets the current state right after its snapshot.
        async with open_websocket_url(url) as late:
            assert (await next_message(late))["type"] == "snapshot"
            current = await next_message(late)
            assert current["type"] == "queueUpdate"
            assert parse_time(current["at"]) >= times[-1]
    # Joins made since: each update counts them.
    assert (await client.get(f"/events/{event['id']}")).json()["version"] == event["version"]


async def test_metrics_count_each_queue(client: httpx.AsyncClient):
    event = await create_event(client, admission=SETTINGS)
    for _ in range(3):
        await join(client, event["id"])
    text = (await client.get("/metrics")).text
    label = f'event="{event["id"]}"'
    for name, value in [("joined", 3), ("ranked", 3), ("admissions_used", 0),
                        ("admissions_expired", 0)]:
        assert f"eventd_queue_{name}{{{label}}} {float(value)}" in text, name
    assert f"eventd_queue_admitted{{{label}}}" in text
