"""The invariant under load, across daemons and across a crash.

Confirmed registrations never exceed maxAttendees; one registration per
attendee and event; a 201 means the row is committed. Every test here runs
the real daemon as a process on a database of its own, over loopback.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.conftest import future, unique_location
from tests.support import DaemonProcess, run_sql

pytestmark = pytest.mark.slow


async def make_attendees(database_url: str, count: int) -> list[str]:
    """Attendees straight into the table: the storm is about registrations."""
    ids = [uuid.uuid4() for _ in range(count)]
    await trio.to_thread.run_sync(
        lambda: run_sql(
            database_url,
            "INSERT INTO attendees (id, name, email)"
            " SELECT id, 'Storm ' || n, 'storm-' || id || '@example.com'"
            " FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n)",
            ids,
        )
    )
    return [str(i) for i in ids]


@contextmanager
def logs_on_failure(*daemons: DaemonProcess) -> Iterator[None]:
    """A storm that fails carries the end of each daemon's log (gone with its tmp dir later)."""
    try:
        yield
    except BaseException as exc:
        for daemon in daemons:
            exc.add_note(f"--- {daemon.url} log, last 60 lines:\n"
                         + "\n".join(daemon.log().splitlines()[-60:]))
        raise


async def storm(
    urls: list[str], event_id: str, attendee_ids: list[str], connections: int = 200,
    waitlist: bool = False,
) -> list[httpx.Response]:
    """Every attendee registers at once, spread round-robin over ``urls``."""
    responses: list[httpx.Response] = []
    limits = httpx.Limits(max_connections=connections // len(urls),
                          max_keepalive_connections=connections // len(urls))
    clients = [httpx.AsyncClient(base_url=u, timeout=60, limits=limits) for u in urls]
    try:
        async def one(c: httpx.AsyncClient, a: str) -> None:
            responses.append(await c.post("/registrations", json={
                "eventId": event_id, "attendeeId": a, "waitlist": waitlist}))

        async with trio.open_nursery() as nursery:
            for n, attendee_id in enumerate(attendee_ids):
                nursery.start_soon(one, clients[n % len(clients)], attendee_id)
    finally:
        for c in clients:
            await c.aclose()
    return responses


async def create_event(url: str, capacity: int) -> str:
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/events", json={"name": "Ticket drop", "date": future(),
                                          "location": unique_location(),
                                          "maxAttendees": capacity})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def database_truth(database_url: str, event_id: str) -> tuple[dict[str, int], tuple[int, int, int]]:
    rows = run_sql(database_url,
                   "SELECT status, count(*) AS n FROM registrations WHERE event_id = $1"
                   " GROUP BY status", uuid.UUID(event_id))
    event = run_sql(database_url,
                    "SELECT confirmed_count, waitlist_count, max_attendees FROM events"
                    " WHERE id = $1", uuid.UUID(event_id))[0]
    return ({r["status"]: r["n"] for r in rows},
            (event["confirmed_count"], event["waitlist_count"], event["max_attendees"]))


def outcome_counts(responses: list[httpx.Response]) -> collections.Counter[tuple[int, str]]:
    return collections.Counter(
        (r.status_code, r.json()["code"] if r.is_error else r.json()["status"])
        for r in responses
    )


async def test_thousand_attempts_for_a_hundred_seats(fresh_database_url: str, workdir: Path):
    daemon = DaemonProcess(fresh_database_url, workdir).start()
    try:
        event_id = await create_event(daemon.url, 100)
        attendees = await make_attendees(fresh_database_url, 1000)
        with trio.fail_after(120), logs_on_failure(daemon):
            responses = await storm([daemon.url], event_id, attendees)
        assert outcome_counts(responses) == {(201, "confirmed"): 100, (409, "event_full"): 900}
        statuses, (confirmed, waitlisted, capacity) = await trio.to_thread.run_sync(
            database_truth, fresh_database_url, event_id)
        assert statuses == {"confirmed": 100}
        assert (confirmed, waitlisted, capacity) == (100, 0, 100)
        async with httpx.AsyncClient(base_url=daemon.url) as c:
            event = (await c.get(f"/events/{event_id}")).json()
        assert (event["registeredCount"], event["availableSpots"]) == (100, 0)
        assert event["version"] == 101  # created at 1, one per confirmation
    finally:
        assert daemon.stop() == 0, daemon.log()


async def test_two_daemons_on_one_database_never_overbook(
    fresh_database_url: str, workdir: Path
):
    first = DaemonProcess(fresh_database_url, workdir).start()
    second = DaemonProcess(fresh_database_url, workdir).start()
    try:
        event_id = await create_event(first.url, 100)
        attendees = await make_attendees(fresh_database_url, 1000)
        with trio.fail_after(120), logs_on_failure(first, second):
            responses = await storm([first.url, second.url], event_id, attendees,
                                    waitlist=False)
        assert outcome_counts(responses) == {(201, "confirmed"): 100, (409, "event_full"): 900}
        statuses, (confirmed, waitlisted, _) = await trio.to_thread.run_sync(
            database_truth, fresh_database_url, event_id)
        assert statuses == {"confirmed": 100}
        assert (confirmed, waitlisted) == (100, 0)
    finally:
        assert first.stop() == 0, first.log()
        assert second.stop() == 0, second.log()


async def test_two_daemons_same_attendee_registers_once(fresh_database_url: str, workdir: Path):
    first = DaemonProcess(fresh_database_url, workdir).start()
    second = DaemonProcess(fresh_database_url, workdir).start()
    try:
        event_id = await create_event(first.url, 10)
        [attendee] = await make_attendees(fresh_database_url, 1)
        with trio.fail_after(60), logs_on_failure(first, second):
            responses = await storm([first.url, second.url] * 10, event_id, [attendee] * 20,
                                    connections=20)
        assert outcome_counts(responses) == {(201, "confirmed"): 1,
                                             (409, "already_registered"): 19}
    finally:
        assert first.stop() == 0, first.log()
        assert second.stop() == 0, second.log()


async def test_kill_9_during_a_storm_loses_no_acknowledged_registration(
    fresh_database_url: str, workdir: Path
):
    daemon = DaemonProcess(fresh_database_url, workdir).start()
    event_id = await create_event(daemon.url, 300)
    attendees = await make_attendees(fresh_database_url, 1000)
    acknowledged: list[str] = []
    enough_acknowledged = trio.Event()

    async def register_all(client: httpx.AsyncClient) -> None:
        async def one(attendee_id: str) -> None:
            try:
                r = await client.post("/registrations", json={
                    "eventId": event_id, "attendeeId": attendee_id, "waitlist": True})
            except httpx.HTTPError:
                return  # the daemon died under this request: no promise was made
            if r.status_code == 201:
                acknowledged.append(r.json()["id"])
                if len(acknowledged) >= 200:
                    enough_acknowledged.set()

        async with trio.open_nursery() as nursery:
            for attendee_id in attendees:
                nursery.start_soon(one, attendee_id)

    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=daemon.url, timeout=30, limits=limits) as client:
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(register_all, client)
                await enough_acknowledged.wait()
                await trio.to_thread.run_sync(daemon.kill)
    assert 200 <= len(acknowledged) < 1000

    restarted = DaemonProcess(fresh_database_url, workdir).start()
    try:
        found = await trio.to_thread.run_sync(lambda: run_sql(
            fresh_database_url, "SELECT id::text FROM registrations WHERE id = ANY($1::uuid[])",
            acknowledged))
        assert {r["id"] for r in found} == set(acknowledged)
        statuses, (confirmed, waitlisted, capacity) = await trio.to_thread.run_sync(
            database_truth, fresh_database_url, event_id)
        assert statuses.get("confirmed", 0) == confirmed <= capacity == 300
        assert statuses.get("waitlisted", 0) == waitlisted
        async with httpx.AsyncClient(base_url=restarted.url) as c:
            event = (await c.get(f"/events/{event_id}")).json()
        assert (event["registeredCount"], event["waitlistCount"]) == (confirmed, waitlisted)
    finally:
        assert restarted.stop() == 0, restarted.log()


@dataclasses.dataclass
class TwoDaemons:
    first: DaemonProcess
    second: DaemonProcess
    event_id: str  # made through the first, capacity 10
    attendees: list[str]
    client: httpx.AsyncClient
    stream: WebSocketConnection  # the event's stream on the second, its snapshot read

    async def register(self, daemon: DaemonProcess, attendee: str) -> httpx.Response:
        return await self.client.post(f"{daemon.url}/registrations",
                                      json={"eventId": self.event_id, "attendeeId": attendee})

    async def next_message(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self.stream.get_message())
        return message


@asynccontextmanager
async def two_daemons_and_a_stream(
    database_url: str, workdir: Path, attendees: int
) -> AsyncIterator[TwoDaemons]:
    first = DaemonProcess(database_url, workdir).start()
    second = DaemonProcess(database_url, workdir).start()
    try:
        event_id = await create_event(first.url, 10)
        ids = await make_attendees(database_url, attendees)
        url = second.url.replace("http://", "ws://") + f"/ws/events/{event_id}"
        async with httpx.AsyncClient() as client, open_websocket_url(url) as stream:
            assert json.loads(await stream.get_message())["type"] == "snapshot"
            yield TwoDaemons(first, second, event_id, ids, client, stream)
    finally:
        assert first.stop() == 0, first.log()
        assert second.stop() == 0, second.log()


async def test_registrations_through_another_daemon_reach_an_actor_as_counts(
    fresh_database_url: str, workdir: Path
):
    """Another daemon's registrations move only the counts: B adopts them without a reload.

    B's stream gets its own change as a capacity update carrying A's too (the
    gap at A's seq is a collapsed capacity update), not the eventUpdated a
    reload publishes after an edit.
    """
    async with two_daemons_and_a_stream(fresh_database_url, workdir, 3) as d:
        assert (await d.register(d.first, d.attendees[0])).status_code == 201
        assert (await d.register(d.second, d.attendees[1])).status_code == 201
        update = await d.next_message()
        assert (update["type"], update["seq"]) == ("eventCapacityUpdate", 3)
        assert update["data"]["registeredCount"] == 2
        event = (await d.client.get(f"{d.second.url}/events/{d.event_id}")).json()
        assert (event["version"], event["registeredCount"], event["name"]) == (3, 2, "Ticket drop")
        # An edit after them is still noticed, with B's next write.
        await d.client.patch(f"{d.first.url}/events/{d.event_id}", json={"name": "Renamed"})
        assert (await d.register(d.second, d.attendees[2])).status_code == 201
        update = await d.next_message()
        assert (update["type"], update["seq"]) == ("eventUpdated", 5)
        assert (update["data"]["name"], update["data"]["registeredCount"]) == ("Renamed", 3)


async def test_an_actor_notices_changes_made_through_another_daemon(
    fresh_database_url: str, workdir: Path
):
    async with two_daemons_and_a_stream(fresh_database_url, workdir, 2) as d:
        renamed = await d.client.patch(f"{d.first.url}/events/{d.event_id}",
                                       json={"name": "Renamed"})
        assert renamed.json()["version"] == 2
        # B learns of it with its own next write: one update carrying it all.
        assert (await d.register(d.second, d.attendees[0])).status_code == 201
        update = await d.next_message()
        assert (update["type"], update["seq"]) == ("eventUpdated", 3)
        assert update["data"]["name"] == "Renamed"
        assert update["data"]["registeredCount"] == 1
        event = (await d.client.get(f"{d.second.url}/events/{d.event_id}")).json()
        assert event["name"] == "Renamed"

        assert (await d.client.delete(f"{d.first.url}/events/{d.event_id}")).status_code == 204
        assert (await d.register(d.second, d.attendees[1])).status_code == 404
        deleted = await d.next_message()
        assert deleted["type"] == "eventDeleted"
        assert deleted["seq"] > 3
        assert (await d.client.get(f"{d.second.url}/events/{d.event_id}")).status_code == 404
