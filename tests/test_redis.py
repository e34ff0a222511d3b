"""Several daemons on one PostgreSQL and one Redis: streams, cache, and Redis outages.

Each test module gets a private ``redis-server`` on a free loopback port, so
it can be killed and restarted without touching anyone else's Redis.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import open_websocket_url

from eventd.model import Event
from tests.conftest import create_attendee, create_event, register
from tests.support import DaemonProcess, free_port, run_sql
from tests.test_invariant import make_attendees
from tests.test_websocket import next_message, ws_url

pytestmark = pytest.mark.slow

WAIT_SECONDS = 20
CHANGE_SEEN_SECONDS = 1.0  # a read anywhere reflects a change this soon after it, Redis or not
POLL_SECONDS = 0.02


class RedisServer:
    """A private redis-server on a free port; it can be killed and started again."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("these tests need redis-server on PATH"
                        " (Debian: apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), __import__("socket").create_connection(
                ("127.0.0.1", self.port), timeout=0.2
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


@pytest.fixture
def two_daemons(
    fresh_database_url: str, redis_server: RedisServer, workdir: Path
) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    sections: dict[str, Any] = {
        "redis": {"url": redis_server.url},
        "websocket": {"queue_size": 4096},
    }
    a = DaemonProcess(fresh_database_url, workdir, **sections).start()
    b = DaemonProcess(fresh_database_url, workdir, **sections).start()
    yield a, b
    assert a.stop() == 0, a.log()
    assert b.stop() == 0, b.log()


def relay_messages(metrics: str) -> dict[str, float]:
    """``eventd_relay_messages_total`` by direction, from a /metrics page."""
    return {
        sample.labels["direction"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "eventd_relay_messages_total"
    }


async def collect(url: str, until_seq: int, into: list[dict[str, Any]],
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    async with open_websocket_url(url) as ws:
        into.append(await next_message(ws))
        task_status.started()
        while into[-1]["seq"] < until_seq:
            into.append(await next_message(ws))


async def test_a_stream_on_b_sees_registrations_made_through_a_in_order(two_daemons):
    a, b = two_daemons
    async with httpx.AsyncClient(base_url=a.url) as via_a:
        event = await create_event(via_a, maxAttendees=1000)
        attendees = [await create_attendee(via_a) for _ in range(30)]
        seen: list[dict[str, Any]] = []
        with trio.fail_after(WAIT_SECONDS):
            async with trio.open_nursery() as nursery:
                await nursery.start(collect, ws_url(b.url, f"/ws/events/{event['id']}"),
                                    1 + len(attendees), seen)
                for attendee in attendees:
                    response = await via_a.post("/registrations", json={
                        "eventId": event["id"], "attendeeId": attendee["id"]})
                    assert response.status_code == 201
        sent = relay_messages((await via_a.get("/metrics")).text)
    async with httpx.AsyncClient(base_url=b.url) as via_b:
        arrived = relay_messages((await via_b.get("/metrics")).text)
    assert sent["published"] >= len(attendees)
    assert sent["dropped"] == 0
    assert arrived["received"] >= len(attendees)
    assert seen[0]["type"] == "snapshot"
    updates = seen[1:]
    assert [m["seq"] for m in updates] == list(range(seen[0]["seq"] + 1, 2 + len(attendees)))
    assert [m["data"]["registeredCount"] for m in updates] == list(
        range(len(attendees) - len(updates) + 1, len(attendees) + 1))


async def test_a_burst_split_across_two_daemons_never_overbooks_and_streams_stay_in_order(
    two_daemons, fresh_database_url: str
):
    a, b = two_daemons
    capacity, attempts = 40, 240
    attendee_ids = await make_attendees(fresh_database_url, attempts)
    async with httpx.AsyncClient(base_url=a.url) as via_a, \
            httpx.AsyncClient(base_url=b.url) as via_b:
        event = await create_event(via_a, maxAttendees=capacity)
        streams: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
        statuses: list[int] = []

        async def one(client: httpx.AsyncClient, attendee_id: str) -> None:
            response = await client.post("/registrations", json={
                "eventId": event["id"], "attendeeId": attendee_id})
            statuses.append(response.status_code)

        with trio.fail_after(60):
            async with trio.open_nursery() as watchers:
                for name, daemon in (("a", a), ("b", b)):
                    await watchers.start(collect, ws_url(daemon.url, f"/ws/events/{event['id']}"),
                                         1 + capacity, streams[name])
                async with trio.open_nursery() as nursery:
                    for i, attendee_id in enumerate(attendee_ids):
                        nursery.start_soon(one, via_a if i % 2 else via_b, attendee_id)
    assert statuses.count(201) == capacity
    assert statuses.count(409) == attempts - capacity
    confirmed = await trio.to_thread.run_sync(lambda: run_sql(
        fresh_database_url,
        f"SELECT count(*) FROM registrations WHERE event_id = '{event['id']}'"
        " AND status = 'confirmed'"))
    assert confirmed == [(capacity,)]
    for name, messages in streams.items():
        seqs = [m["seq"] for m in messages]
        assert seqs == sorted(set(seqs)), f"daemon {name}: seq out of order: {seqs}"
        assert seqs == list(range(seqs[0], capacity + 2)), f"daemon {name}: gaps: {seqs}"
        assert messages[-1]["data"]["registeredCount"] == capacity


async def test_an_edit_through_a_is_read_at_once_through_b(two_daemons):
    a, b = two_daemons
    async with httpx.AsyncClient(base_url=a.url) as via_a, \
            httpx.AsyncClient(base_url=b.url) as via_b:
        event = await create_event(via_a, maxAttendees=10)
        assert (await via_b.get(f"/events/{event['id']}")).json() == event  # B caches it
        for i in range(20):
            patched = await via_a.patch(f"/events/{event['id']}", json={"name": f"Name {i}"})
            assert patched.status_code == 200
            read = (await via_b.get(f"/events/{event['id']}")).json()
            assert read["name"] == f"Name {i}"
            assert read["version"] == patched.json()["version"]
        attendee = await create_attendee(via_b)
        registered = await via_b.post("/registrations", json={
            "eventId": event["id"], "attendeeId": attendee["id"]})
        assert registered.status_code == 201
        assert (await via_a.get(f"/events/{event['id']}")).json()["registeredCount"] == 1
        assert (await via_a.delete(f"/events/{event['id']}")).status_code == 204
        assert (await via_b.get(f"/events/{event['id']}")).status_code == 404


async def wait_for_health(client: httpx.AsyncClient, status: str) -> dict[str, Any]:
    with trio.fail_after(WAIT_SECONDS):
        while True:
            body: dict[str, Any] = (await client.get("/health")).json()
            if body["status"] == status:
                return body
            await trio.sleep(0.1)


async def test_redis_killed_mid_run_fails_no_request_and_is_rejoined(two_daemons, redis_server):
    a, b = two_daemons
    async with httpx.AsyncClient(base_url=a.url) as via_a, \
            httpx.AsyncClient(base_url=b.url) as via_b:
        health = await wait_for_health(via_a, "ok")
        assert health["checks"]["redis"]["status"] == "up"
        event = await create_event(via_a, maxAttendees=100)
        attendees = [await create_attendee(via_a) for _ in range(20)]

        await trio.to_thread.run_sync(redis_server.kill)
        for n, attendee in enumerate(attendees[:10], start=1):
            client = via_a if n % 2 else via_b
            response = await client.post("/registrations", json={
                "eventId": event["id"], "attendeeId": attendee["id"]})
            assert response.status_code == 201, response.text
            assert (await client.get(f"/events/{event['id']}")).status_code == 200
        assert (await via_a.patch(f"/events/{event['id']}", json={"name": "No Redis"})
                ).status_code == 200
        for client in (via_a, via_b):
            down = await wait_for_health(client, "degraded")
            assert down["checks"]["redis"] == {"status": "down"}
            assert (await client.get("/health")).status_code == 200

        await trio.to_thread.run_sync(redis_server.start)
        for client in (via_a, via_b):
            back = await wait_for_health(client, "ok")
            assert back["checks"]["redis"]["status"] == "up"
        # Rejoined: B reloaded what it missed, the cache holds nothing stale,
        # and B's streams hear A's changes again.
        assert (await via_b.get(f"/events/{event['id']}")).json()["name"] == "No Redis"
        async with open_websocket_url(ws_url(b.url, f"/ws/events/{event['id']}")) as ws:
            snapshot = await next_message(ws)
            assert snapshot["data"]["registeredCount"] == 10
            response = await via_a.post("/registrations", json={
                "eventId": event["id"], "attendeeId": attendees[10]["id"]})
            assert response.status_code == 201
            update = await next_message(ws)
        assert update["type"] == "eventCapacityUpdate"
        assert update["data"]["registeredCount"] == 11
        assert update["seq"] == snapshot["seq"] + 1


async def test_without_redis_health_says_disabled(client: httpx.AsyncClient):
    body = (await client.get("/health")).json()
    assert body["checks"]["redis"] == {"status": "disabled"}


async def test_the_global_stream_on_b_carries_events_created_through_a(two_daemons):
    a, b = two_daemons
    async with httpx.AsyncClient(base_url=a.url) as via_a, \
            open_websocket_url(ws_url(b.url, "/ws")) as ws:
        event = await create_event(via_a, maxAttendees=3)
        attendee = await create_attendee(via_a)
        assert (await via_a.post("/registrations", json={
            "eventId": event["id"], "attendeeId": attendee["id"]})).status_code == 201
        messages = [await next_message(ws) for _ in range(2)]
    assert [(m["type"], m["seq"]) for m in messages] == [
        ("newEvent", 1), ("eventCapacityUpdate", 2)]
    assert messages[0]["data"] == event
    assert json.dumps(messages[1]["data"]["registeredCount"]) == "1"


def database_event(database_url: str, event_id: str) -> dict[str, Any] | None:
    """The event as its row says, in the API's JSON; None when it is gone."""
    rows = run_sql(database_url, f"SELECT {Event.COLUMNS} FROM events WHERE id = $1",
                   uuid.UUID(event_id))
    return Event.from_row(rows[0]).to_json() if rows else None


async def read_event(client: httpx.AsyncClient, event_id: str) -> dict[str, Any] | None:
    response = await client.get(f"/events/{event_id}")
    assert response.status_code in (200, 404), response.text
    return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]


async def assert_reads_the_database(
    client: httpx.AsyncClient, database_url: str, event_id: str
) -> dict[str, Any] | None:
    """The daemon's read of the event equals its row within CHANGE_SEEN_SECONDS of a change.

    Called once the change is answered; the row is read first (the database is
    the last word), then the daemon is asked until it agrees, or the time is up.
    """
    expected = await trio.to_thread.run_sync(database_event, database_url, event_id)
    read: dict[str, Any] | None | str = "not read in time"
    with trio.move_on_after(CHANGE_SEEN_SECONDS):
        while True:
            read = await read_event(client, event_id)
            if read == expected:
                break
            await trio.sleep(POLL_SECONDS)
    assert read == expected
    return expected


async def test_while_redis_is_down_reads_on_b_follow_the_database(
    two_daemons, redis_server, fresh_database_url: str
):
    a, b = two_daemons
    db = fresh_database_url
    async with httpx.AsyncClient(base_url=a.url) as via_a, \
            httpx.AsyncClient(base_url=b.url) as via_b:
        await wait_for_health(via_b, "ok")
        event = await create_event(via_a, maxAttendees=3)
        eid = event["id"]
        attendees = [await create_attendee(via_a) for _ in range(9)]
        assert await read_event(via_b, eid) == event  # B holds it in an actor, and caches it
        async with open_websocket_url(ws_url(b.url, f"/ws/events/{eid}")) as watching:
            before = await next_message(watching)
            assert before["seq"] == event["version"]

            await trio.to_thread.run_sync(redis_server.kill)
            registered = []
            for attendee in attendees[:5]:  # three confirmed, two waitlisted
                response = await register(via_a, eid, attendee["id"], waitlist=True)
                assert response.status_code == 201, response.text
                registered.append(response.json())
                await assert_reads_the_database(via_b, db, eid)
            renamed = await via_a.patch(f"/events/{eid}", json={"name": "Redis is down"})
            assert renamed.status_code == 200
            await assert_reads_the_database(via_b, db, eid)
            assert (await via_a.delete(f"/registrations/{registered[0]['id']}",
                                       params={"token": registered[0]["manageToken"]})
                    ).status_code == 204  # the first waitlisted takes the spot
            now = await assert_reads_the_database(via_b, db, eid)
            assert now is not None
            assert (now["name"], now["registeredCount"], now["waitlistCount"]) == (
                "Redis is down", 3, 1)

            # A stream opened on B starts where the database is, resumed or not.
            for path in (f"/ws/events/{eid}", f"/ws/events/{eid}?since={before['seq']}"):
                async with open_websocket_url(ws_url(b.url, path)) as ws:
                    first = await next_message(ws)
                assert (first["type"], first["seq"], first["data"]) == (
                    "snapshot", now["version"], now), path

            # A change through B reaches B's stream at the database's seq.
            response = await register(via_b, eid, attendees[5]["id"], waitlist=True)
            assert response.status_code == 201, response.text
            own = await next_message(watching)
            now = await assert_reads_the_database(via_b, db, eid)
            assert now is not None
            assert own["type"] == "eventCapacityUpdate"
            assert (own["seq"], own["data"]["waitlistCount"]) == (now["version"], 2)
            await assert_reads_the_database(via_a, db, eid)

            # Redis returns. Changes made while the daemons notice, and once B
            # trusts Redis again (A may not have noticed yet), are not lost on B.
            await trio.to_thread.run_sync(redis_server.start)
            for attendee, ready in ((attendees[6], via_b), (attendees[7], via_a)):
                response = await register(via_a, eid, attendee["id"], waitlist=True)
                assert response.status_code == 201, response.text
                await assert_reads_the_database(via_b, db, eid)
                await wait_for_health(ready, "ok")
            response = await register(via_a, eid, attendees[8]["id"], waitlist=True)
            assert response.status_code == 201, response.text
            for client in (via_a, via_b):
                now = await assert_reads_the_database(client, db, eid)
            assert now is not None
            assert now["waitlistCount"] == 5

            # B's stream caught up too, in order.
            seen = [own]
            while seen[-1]["seq"] < now["version"]:
                seen.append(await next_message(watching))
        seqs = [message["seq"] for message in seen]
        assert seqs == sorted(set(seqs))
        assert seen[-1]["seq"] == now["version"]
        assert seen[-1]["data"]["waitlistCount"] == now["waitlistCount"]


async def test_a_hold_made_through_a_expires_once_and_b_streams_it(
    two_daemons, fresh_database_url: str
):
    """The hold's timer is A's; B's stream sees the expiry and the offer, and each
    happens once: one expired email, one offered email."""
    a, b = two_daemons
    async with httpx.AsyncClient(base_url=a.url) as via_a, \
            httpx.AsyncClient(base_url=b.url) as via_b:
        event = await create_event(via_a, maxAttendees=1, holdMinutes=0.05, offerMinutes=60)
        holder, waiting = await create_attendee(via_a), await create_attendee(via_a)
        held = (await via_a.post("/registrations", json={
            "eventId": event["id"], "attendeeId": holder["id"], "hold": True})).json()
        queued = (await via_a.post("/registrations", json={
            "eventId": event["id"], "attendeeId": waiting["id"], "waitlist": True})).json()
        assert (held["status"], queued["status"]) == ("held", "waitlisted")
        seen: list[dict[str, Any]] = []
        with trio.fail_after(WAIT_SECONDS):
            async with open_websocket_url(ws_url(b.url, f"/ws/events/{event['id']}")) as ws:
                seen.append(await next_message(ws))  # the snapshot
                while seen[-1]["data"].get("waitlistCount", 1) != 0:
                    seen.append(await next_message(ws))
        final = seen[-1]
        assert final["type"] == "eventCapacityUpdate"
        assert (final["data"]["heldCount"], final["data"]["registeredCount"]) == (1, 0)
        assert (await via_b.get(f"/registrations/{held['id']}")).json()["status"] == "expired"
        offer = (await via_b.get(f"/registrations/{queued['id']}")).json()
        assert offer["status"] == "offered"
        # The offer is claimed through B with the token A answered.
        claimed = await via_b.post(f"/registrations/{queued['id']}/confirm",
                                   params={"token": queued["manageToken"]})
        assert claimed.status_code == 200, claimed.text
        rows = await trio.to_thread.run_sync(lambda: run_sql(
            fresh_database_url, "SELECT kind, count(*) AS n FROM email_outbox"
            " WHERE payload #>> '{event,id}' = $1 GROUP BY kind", event["id"]))
        kinds = {r["kind"]: r["n"] for r in rows}
        assert (kinds["expired"], kinds["offered"]) == (1, 1)

