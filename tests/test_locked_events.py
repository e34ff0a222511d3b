"""One locked event does not stall the others.

Another transaction (an admin's, another daemon's) holds an event's row: the
writer's batches skip that event instead of waiting for it, so registrations
for every other event go on, and the locked event's requests wait in their
actor — answered once the lock goes, or 503 at their deadline, unwritten.

Rules of this file: the real daemon over HTTP, the real PostgreSQL; the lock
is held by a second connection in a thread of its own; every wait is
bounded, and nothing is asserted about how long anything took.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
import trio

from tests.conftest import assert_problem, create_attendee, create_event
from tests.support import DaemonProcess, run_sql, scratch_database

WAIT_SECONDS = 30


@asynccontextmanager
async def row_locked(database_url: str, event_id: str) -> AsyncIterator[None]:
    """Hold ``SELECT … FOR UPDATE`` on the event's row from another connection."""
    locked, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def hold() -> None:
        async def main() -> None:
            conn = await asyncpg.connect(database_url)
            try:
                async with conn.transaction():
                    await conn.execute("SELECT 1 FROM events WHERE id = $1 FOR UPDATE", event_id)
                    locked.set()
                    await asyncio.get_running_loop().run_in_executor(None, release.wait)
            finally:
                await conn.close()

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failure.append(exc)
            locked.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, hold)
        await trio.to_thread.run_sync(locked.wait)
        assert not failure, failure
        try:
            yield
        finally:
            release.set()


async def confirmed_count(database_url: str, event_id: str) -> int:
    [row] = await trio.to_thread.run_sync(
        run_sql,
        database_url,
        "SELECT count(*) AS n FROM registrations WHERE event_id = $1 AND status = 'confirmed'",
        event_id,
    )
    return int(row["n"])


async def register(client: httpx.AsyncClient, event_id: str) -> httpx.Response:
    attendee = await create_attendee(client)
    return await client.post(
        "/registrations", json={"eventId": event_id, "attendeeId": attendee["id"]}
    )


async def test_registrations_for_other_events_go_on_while_one_is_locked(
    client: httpx.AsyncClient, database_url: str
) -> None:
    locked_event = await create_event(client, maxAttendees=50)
    other = await create_event(client, maxAttendees=50)
    waiting: list[httpx.Response] = []
    with trio.fail_after(WAIT_SECONDS):
        async with trio.open_nursery() as nursery:
            async with row_locked(database_url, locked_event["id"]):

                async def wait_for_locked() -> None:
                    waiting.append(await register(client, locked_event["id"]))

                for _ in range(3):
                    nursery.start_soon(wait_for_locked)
                for _ in range(10):
                    response = await register(client, other["id"])
                    assert response.status_code == 201, response.text
                # Every one of them answered while the other event is still locked.
                assert waiting == []
                assert await confirmed_count(database_url, locked_event["id"]) == 0
            # The lock is gone: the carried requests go through, once each.
    assert [r.status_code for r in waiting] == [201] * 3
    assert await confirmed_count(database_url, locked_event["id"]) == 3
    assert await confirmed_count(database_url, other["id"]) == 10
    event = (await client.get(f"/events/{locked_event['id']}")).json()
    assert event["registeredCount"] == 3


@pytest.fixture
def quick_daemon(pg_admin_url: str, tmp_path: Path) -> Iterator[tuple[DaemonProcess, str]]:
    """A daemon of its own whose requests give up after two seconds."""
    with scratch_database(pg_admin_url) as url:
        proc = DaemonProcess(url, tmp_path, server={"request_timeout_seconds": 2}).start()
        try:
            yield proc, url
        finally:
            assert proc.stop() == 0, proc.log()


async def test_a_request_still_locked_out_at_its_deadline_is_503_and_never_written(
    quick_daemon: tuple[DaemonProcess, str],
) -> None:
    daemon, database_url = quick_daemon
    async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
        event = await create_event(client)
        with trio.fail_after(WAIT_SECONDS):
            async with row_locked(database_url, event["id"]):
                response = await register(client, event["id"])
                assert_problem(response, 503, "unavailable")
                assert "retry-after" in response.headers
            # After the lock, the given-up request is not written behind the client's back.
            later = await register(client, event["id"])
            assert later.status_code == 201, later.text
    assert await confirmed_count(database_url, event["id"]) == 1
