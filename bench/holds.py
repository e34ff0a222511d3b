"""Holds: hold-then-confirm throughput against plain registration, and a mass expiry.

    python -m bench.holds [--pairs 4000] [--connections 200] [--rounds 2]
                          [--holds 10000] [--subscribers 4] [--hold-minutes 1]

Issue #27's figures. The real daemon on a scratch database (bench.harness),
``email.transport = "none"``; the load from this process over keep-alive
connections (bench.loadgen's client), on loopback.

1. Throughput, one hot event per phase, ``--rounds`` rounds, the two shapes
   alternated (each phase on an event of its own, attendees put in by SQL):

   - plain: ``POST /registrations`` ``{"eventId", "attendeeId"}`` → 201;
   - hold-then-confirm: each client sends ``POST /registrations`` with
     ``"hold": true`` (→ 201 with ``manageToken``), then
     ``POST /registrations/{id}/confirm`` with the token in the
     ``Registration-Token`` header (→ 200): pairs/s.

   The ratio pairs/s ÷ plain registrations/s (medians of the rounds) has the
   goal ≥ 0.45: a pair is two requests where a plain registration is one.
   The mailer catches up before every phase.

2. Mass expiry: one event of ``--holds`` seats with ``offerMinutes`` 60 and
   ``holdMinutes`` ``--hold-minutes``; ``--holds`` holds then as many
   waitlisted registrations, all through the API. The holds expire at
   different moments (they were made over seconds); one SQL statement then
   moves every hold's ``expiresAt`` to the earliest, the moment the event's
   actor has armed its timer for, so all of them fall due at one instant.
   ``--subscribers`` WebSocket clients follow the event's stream. Measured
   from that ``expiresAt``: when the expiring transaction began (the event's
   ``updated_at``), when this process saw it committed (polling the event's
   row every 10 ms), and when each subscriber got the final counts (every
   seat offered: ``waitlistCount`` 0, ``heldCount`` = seats). Goal: every
   subscriber within 2 s. Afterwards the database must hold exactly
   ``--holds`` expired and ``--holds`` offered registrations.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import trio
import trio_websocket

from bench.harness import (
    FAR_FUTURE,
    daemon_on_scratch_database,
    insert_attendees,
    machine,
    percentile,
    postgres_admin,
    wait_for_mailer,
)
from bench.loadgen import Connection
from tests.support import run_sql

GOAL_RATIO = 0.45  # hold-then-confirm pairs/s ≥ this × plain registrations/s
GOAL_EXPIRY_SECONDS = 2.0  # expiresAt → every subscriber has the final counts
TOKEN_HEADER = "Registration-Token"


def create_event(url: str, capacity: int, **fields: Any) -> dict[str, Any]:
    response = httpx.post(f"{url}/events", timeout=30, json={
        "name": "Holds bench", "date": FAR_FUTURE,
        "location": f"Bench {uuid.uuid4().hex[:10]}", "maxAttendees": capacity, **fields,
    })
    response.raise_for_status()
    event: dict[str, Any] = response.json()
    return event


# --- 1. throughput -------------------------------------------------------------------


async def _drive(url: str, connections: int, attendees: list[uuid.UUID], event_id: str,
                 hold: bool) -> dict[str, Any]:
    """Every attendee registered (or held and confirmed) once; wall time and latencies."""
    send, receive = trio.open_memory_channel[uuid.UUID](len(attendees))
    for attendee in attendees:
        send.send_nowait(attendee)
    send.close()
    first: list[tuple[int, float]] = []
    second: list[tuple[int, float]] = []

    async def worker(queue: trio.MemoryReceiveChannel[uuid.UUID]) -> None:
        connection = await Connection.open(url)
        try:
            async for attendee in queue:
                body = {"eventId": event_id, "attendeeId": str(attendee)}
                if hold:
                    body["hold"] = True
                started = time.perf_counter()
                status, answer = await connection.exchange(
                    "POST", "/registrations", json.dumps(body).encode())
                held = time.perf_counter()
                first.append((status, held - started))
                if not hold or status != 201:
                    continue
                made = json.loads(answer)
                status, _ = await connection.exchange(
                    "POST", f"/registrations/{made['id']}/confirm",
                    headers=f"{TOKEN_HEADER}: {made['manageToken']}\r\n")
                second.append((status, time.perf_counter() - held))
        finally:
            await connection.aclose()

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(worker, receive.clone())
    wall = time.perf_counter() - started
    return {"wall_s": wall, "per_s": len(attendees) / wall,
            "first": _latencies(first), "second": _latencies(second)}


def _latencies(results: list[tuple[int, float]]) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    seconds = sorted(s for _, s in results)
    return {"statuses": statuses,
            "p50_ms": 1000 * statistics.median(seconds) if seconds else float("nan"),
            "p99_ms": 1000 * percentile(seconds, 0.99),
            "mean_ms": 1000 * statistics.fmean(seconds) if seconds else float("nan")}


def _lat(name: str, lat: dict[str, Any]) -> str:
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(lat["statuses"].items()))
    return (f"{name} p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms,"
            f" mean {lat['mean_ms']:.1f} ms ({statuses})")


def throughput(url: str, db: str, pairs: int, connections: int, rounds: int) -> None:
    print(f"throughput: {pairs} per phase, one hot event each, {connections} connections,"
          f" {rounds} rounds alternated", flush=True)
    rates: dict[str, list[float]] = {"plain": [], "hold+confirm": []}
    warm = create_event(url, 500)
    trio.run(_drive, url, connections, insert_attendees(db, 500), warm["id"], False)
    for n in range(rounds):
        for label in ("plain", "hold+confirm"):
            _settle(db)
            hold = label != "plain"
            event = create_event(url, pairs)
            r = trio.run(_drive, url, connections, insert_attendees(db, pairs), event["id"], hold)
            rates[label].append(r["per_s"])
            unit = "pairs" if hold else "registrations"
            line = (f"  round {n + 1} {label:>12}: {pairs} {unit} in {r['wall_s']:5.2f} s ="
                    f" {r['per_s']:6.0f}/s; " + _lat("register" if not hold else "hold",
                                                      r["first"]))
            if hold:
                line += "; " + _lat("confirm", r["second"])
            print(line, flush=True)
            [row] = run_sql(db, "SELECT confirmed_count, held_count FROM events WHERE id = $1",
                            uuid.UUID(event["id"]))
            assert (row["confirmed_count"], row["held_count"]) == (pairs, 0), dict(row)
    plain, paired = statistics.median(rates["plain"]), statistics.median(rates["hold+confirm"])
    ratio = paired / plain
    print(f"hold+confirm {paired:.0f} pairs/s {_each(rates['hold+confirm'])}, plain"
          f" {plain:.0f} registrations/s {_each(rates['plain'])}: ratio {ratio:.2f}"
          f" (goal ≥ {GOAL_RATIO}) {'pass' if ratio >= GOAL_RATIO else 'MISS'}", flush=True)


def _settle(db: str, seconds: float = 30.0) -> None:
    """Until the mailer has caught up, or ``seconds``: then say what it left."""
    try:
        wait_for_mailer(db, seconds)
    except RuntimeError:
        [row] = run_sql(db, "SELECT count(*) AS pending, max(last_error) AS error,"
                            " max(attempts) AS attempts FROM email_outbox WHERE sent_at IS NULL")
        print(f"  (the mailer left {row['pending']} emails unsent, up to {row['attempts']}"
              f" attempts: {row['error']})", flush=True)


def _each(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in values) + ")"


# --- 2. mass expiry ------------------------------------------------------------------


async def _fill(url: str, connections: int, attendees: list[uuid.UUID], event_id: str,
                body: dict[str, Any]) -> dict[int, int]:
    send, receive = trio.open_memory_channel[uuid.UUID](len(attendees))
    for attendee in attendees:
        send.send_nowait(attendee)
    send.close()
    statuses: dict[int, int] = {}

    async def worker(queue: trio.MemoryReceiveChannel[uuid.UUID]) -> None:
        connection = await Connection.open(url)
        try:
            async for attendee in queue:
                status = await connection.request("POST", "/registrations", json.dumps(
                    {"eventId": event_id, "attendeeId": str(attendee), **body}).encode())
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            await connection.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(worker, receive.clone())
    return statuses


async def _subscriber(url: str, event_id: str, seats: int, ready: trio.Semaphore,
                      seen: list[float]) -> None:
    ws_url = url.replace("http://", "ws://") + f"/ws/events/{event_id}"
    async with trio_websocket.open_websocket_url(ws_url) as ws:
        ready.release()
        while True:
            message = json.loads(await ws.get_message())
            data = message.get("data") or {}
            if data.get("waitlistCount") == 0 and data.get("heldCount") == seats:
                seen.append(time.time())
                return


def _poll_committed(db: str, event_id: uuid.UUID, deadline: float) -> tuple[float, Any]:
    """When the event's waitlist is empty in the database (this clock), and its row."""
    while time.time() < deadline:
        [row] = run_sql(db, "SELECT waitlist_count, held_count, updated_at FROM events"
                            " WHERE id = $1", event_id)
        if row["waitlist_count"] == 0:
            return time.time(), row
        time.sleep(0.01)
    raise RuntimeError("the expiry did not commit in time")


async def _expire(url: str, db: str, event_id: str, seats: int, subscribers: int,
                  at: datetime) -> dict[str, Any]:
    seen: list[float] = []
    ready = trio.Semaphore(subscribers, max_value=subscribers)
    for _ in range(subscribers):
        await ready.acquire()
    deadline = at.timestamp() + 120
    with trio.fail_after(max(1.0, deadline - time.time())):
        async with trio.open_nursery() as nursery:
            for _ in range(subscribers):
                nursery.start_soon(_subscriber, url, event_id, seats, ready, seen)
            for _ in range(subscribers):
                await ready.acquire()  # every stream open (its snapshot on the way)
            if time.time() >= at.timestamp():
                raise RuntimeError("the holds fell due before the subscribers were ready;"
                                   " give a larger --hold-minutes")
            committed, row = await trio.to_thread.run_sync(
                _poll_committed, db, uuid.UUID(event_id), deadline)
    return {"committed": committed, "began": row["updated_at"].timestamp(), "seen": seen}


def mass_expiry(url: str, db: str, holds: int, subscribers: int, hold_minutes: float,
                connections: int) -> None:
    event = create_event(url, holds, holdMinutes=hold_minutes, offerMinutes=60)
    eid = uuid.UUID(event["id"])
    people = insert_attendees(db, 2 * holds)
    started = time.perf_counter()
    made = trio.run(_fill, url, connections, people[:holds], event["id"], {"hold": True})
    took = time.perf_counter() - started
    assert made == {201: holds}, made
    waiting = trio.run(_fill, url, connections, people[holds:], event["id"], {"waitlist": True})
    assert waiting == {201: holds}, waiting
    print(f"mass expiry: {holds} holds made through the API in {took:.1f} s"
          f" ({holds / took:.0f}/s), {holds} waitlisted behind them; offerMinutes 60,"
          f" {subscribers} subscribers", flush=True)
    _settle(db)
    [row] = run_sql(
        db,
        "WITH due AS (SELECT min(expires_at) AS at FROM registrations"
        "  WHERE event_id = $1 AND status = 'held'),"
        " moved AS (UPDATE registrations r SET expires_at = due.at FROM due"
        "  WHERE r.event_id = $1 AND r.status = 'held' RETURNING r.id)"
        " SELECT (SELECT at FROM due) AS at, (SELECT count(*) FROM moved) AS moved",
        eid,
    )
    at: datetime = row["at"]
    assert row["moved"] == holds, dict(row)
    print(f"  every hold's expiresAt set to the earliest, {at.isoformat()},"
          f" {at.timestamp() - time.time():.1f} s from now", flush=True)
    r = trio.run(_expire, url, db, event["id"], holds, subscribers, at)
    t0 = at.timestamp()
    seen = sorted(s - t0 for s in r["seen"])
    [counts] = run_sql(
        db,
        "SELECT count(*) FILTER (WHERE status = 'expired') AS expired,"
        " count(*) FILTER (WHERE status = 'offered') AS offered,"
        " count(*) FILTER (WHERE status IN ('held', 'waitlisted')) AS left"
        " FROM registrations WHERE event_id = $1",
        eid,
    )
    assert (counts["expired"], counts["offered"], counts["left"]) == (holds, holds, 0), \
        dict(counts)
    worst = seen[-1]
    print(f"  from expiresAt: transaction began +{r['began'] - t0:.3f} s, committed (seen"
          f" here) +{r['committed'] - t0:.3f} s, subscribers had the final counts"
          f" +{seen[0]:.3f} … +{worst:.3f} s; in the database: {counts['expired']} expired,"
          f" {counts['offered']} offered", flush=True)
    print(f"mass expiry: {holds} holds re-offered and every subscriber told in {worst:.2f} s"
          f" (goal ≤ {GOAL_EXPIRY_SECONDS:.0f} s)"
          f" {'pass' if worst <= GOAL_EXPIRY_SECONDS else 'MISS'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--holds", type=int, default=10_000)
    parser.add_argument("--subscribers", type=int, default=4)
    parser.add_argument("--hold-minutes", type=float, default=1.0,
                        help="long enough to make every hold and waitlisted registration")
    parser.add_argument("--only", choices=("throughput", "expiry"))
    args = parser.parse_args()
    with postgres_admin() as admin, tempfile.TemporaryDirectory() as tmp:
        print("\n".join(machine(admin)), flush=True)
        with daemon_on_scratch_database(admin, Path(tmp), email={"transport": "none"}) as (
            daemon, db,
        ):
            if args.only != "expiry":
                throughput(daemon.url, db, args.pairs, args.connections, args.rounds)
            if args.only != "throughput":
                mass_expiry(daemon.url, db, args.holds, args.subscribers, args.hold_minutes,
                            args.connections)


if __name__ == "__main__":
    main()
