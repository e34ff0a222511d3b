"""The admission queue on two daemons sharing a database, and across a kill -9.

No daemon leads: each computes the frontier from the database's clock, so
both send the same ``queueUpdate`` numbers, and never more admitted than the
formula allows. The opening's ranking runs once, whichever daemon (or none,
then the next to start) gets there.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

from tests.conftest import create_event, parse_time
from tests.support import WAIT_SECONDS, DaemonProcess, next_message, run_sql, ws_url

RATE = 600  # per minute: ten a second


def soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def until(moment: datetime) -> None:
    """Wait for a moment of the database's clock (this machine's: they are one)."""
    await trio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


async def join(client: httpx.AsyncClient, event_id: str) -> dict[str, Any]:
    response = await client.post(f"/events/{event_id}/queue")
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


async def test_two_daemons_agree_and_never_admit_more_than_the_formula(
    two_daemons: list[DaemonProcess],
):
    a, b = two_daemons
    async with httpx.AsyncClient(base_url=a.url, timeout=30) as on_a, \
            httpx.AsyncClient(base_url=b.url, timeout=30) as on_b:
        event = await create_event(on_a, salesStartAt=soon(2.5),
                                   admission={"ratePerMinute": RATE, "tokenMinutes": 1})
        eid = event["id"]
        early: list[tuple[httpx.AsyncClient, dict[str, Any]]] = []

        async def joins(client: httpx.AsyncClient, n: int, into: list[Any]) -> None:
            for _ in range(n):
                into.append((client, await join(client, eid)))

        async with trio.open_nursery() as nursery:  # pre-sale, on both at once
            nursery.start_soon(joins, on_a, 30, early)
            nursery.start_soon(joins, on_b, 30, early)
        assert {t["rank"] for _, t in early} == {None}
        opens = parse_time(event["salesStartAt"])

        updates: dict[str, list[dict[str, Any]]] = {a.url: [], b.url: []}
        late: list[tuple[httpx.AsyncClient, dict[str, Any]]] = []

        async def follow(daemon: DaemonProcess) -> None:
            async with open_websocket_url(ws_url(daemon.url, f"/ws/events/{eid}")) as ws:
                assert (await next_message(ws))["type"] == "snapshot"
                while len(updates[daemon.url]) < 12:
                    message = await next_message(ws)
                    assert message["type"] == "queueUpdate"
                    updates[daemon.url].append(message)

        async def join_after_opening(client: httpx.AsyncClient) -> None:
            await until(opens + timedelta(seconds=1))
            await joins(client, 20, late)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, a)
            nursery.start_soon(follow, b)
            nursery.start_soon(join_after_opening, on_a)
            nursery.start_soon(join_after_opening, on_b)

        for sent in updates.values():
            throughs = [u["data"]["admittedThrough"] for u in sent]
            assert throughs == sorted(throughs)
            for update in sent:
                data = update["data"]
                seconds = (parse_time(update["at"]) - opens).total_seconds()
                allowed = max(0, math.floor(seconds * RATE / 60))
                assert data["admittedThrough"] <= allowed
                assert data["admittedThrough"] == min(data["ranked"], allowed)
        assert max(u["data"]["admittedThrough"] for u in updates[a.url]) > 0

        # Every ticket is there, read on the other daemon; ranks are 1..100 with the
        # pre-sale joiners first and each daemon's later joiners in their order.
        ranks: list[int] = []
        for client, ticket in early + late:
            other = on_b if client is on_a else on_a
            response = await other.get(f"/events/{eid}/queue/{ticket['ticketId']}",
                                        params={"token": ticket["token"]})
            assert response.status_code == 200, response.text
            ranks.append(response.json()["rank"])
        assert sorted(ranks) == list(range(1, 101))
        assert sorted(ranks[:60]) == list(range(1, 61))
        for client in (on_a, on_b):
            mine = [t["rank"] for c, t in late if c is client]
            assert mine == sorted(mine)


async def test_kill_9_at_the_opening_loses_no_ticket_and_reshuffles_nothing(
    fresh_database_url: str, tmp_path: Path,
):
    daemon = DaemonProcess(fresh_database_url, tmp_path).start()
    async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
        event = await create_event(client, salesStartAt=soon(2.0),
                                   admission={"ratePerMinute": RATE, "tokenMinutes": 1})
        tickets = [await join(client, event["id"]) for _ in range(200)]
    await until(parse_time(event["salesStartAt"]))
    daemon.kill()

    async def ranks() -> dict[str, int | None]:
        rows = await trio.to_thread.run_sync(lambda: run_sql(
            fresh_database_url, "SELECT id::text, rank FROM queue_tickets ORDER BY seq"))
        return {row["id"]: row["rank"] for row in rows}

    at_kill = await ranks()
    assert set(at_kill) == {t["ticketId"] for t in tickets}  # every acknowledged join
    assert set(at_kill.values()) in ({None}, set(range(1, 201)))  # all ranked, or none

    daemon.start()
    try:
        with trio.fail_after(WAIT_SECONDS):
            while None in (after := await ranks()).values():  # noqa: ASYNC110 - polled from outside
                await trio.sleep(0.1)
        assert sorted(after.values()) == list(range(1, 201))  # type: ignore[type-var]
        if None not in at_kill.values():
            assert after == at_kill  # ranked before the kill: the same ranks after it
        daemon.kill()
        daemon.start()
        async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
            for ticket in tickets[:20]:
                response = await client.get(
                    f"/events/{event['id']}/queue/{ticket['ticketId']}",
                    params={"token": ticket["token"]})
                assert response.json()["rank"] == after[ticket["ticketId"]]
        assert await ranks() == after
    finally:
        assert daemon.stop() == 0, daemon.log()
