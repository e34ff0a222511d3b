"""Check-in at the door: tickets issued, check-ins and re-scans per second, against reads.

    python -m bench.checkins [--tickets 5000] [--connections 64]

Issue #30's figure: check-ins per second on one daemon, goal at least half
the read rate (a check-in is one signature check and one guarded update; a
read is served from the actor's memory). The real daemon on a scratch
database (bench.harness), ``email.transport = "none"``; one event with
``--tickets`` confirmed registrations put in with one SQL statement. From
this process, over ``--connections`` keep-alive connections (bench.loadgen's
client), in turn:

1. reads: ``GET /events/{id}``, as many requests as there are tickets;
2. issue: ``GET /registrations/{id}/ticket`` for ``--issue`` registrations
   (signs the JWS and draws its QR code, some 30 ms of pure Python);
3. check-in: ``POST /checkins`` with every ticket once — each must be 201;
4. re-scan: the same again — each must be ``409 already_checked_in``;
5. reads again: the machine's speed drifts, so the read rate is the mean of
   the two read phases, one on each side of the writes.

Prints the machine, then one line per phase: requests, wall time, requests/s,
p50/p99 latency, the statuses seen, and check-ins / reads against the goal.
The database must hold ``checked_in_count`` = tickets afterwards.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import trio

from bench.harness import (
    create_event,
    daemon_on_scratch_database,
    machine,
    percentile,
    postgres_admin,
)
from bench.loadgen import Connection
from eventd.tickets import Ticket, issued_at, load_or_create_key
from tests.support import run_sql

GOAL_RATIO = 0.5  # check-ins per second ≥ this × reads per second


def fill(db: str, event_id: str, count: int) -> list[str]:
    """``count`` attendees, each with a confirmed registration for the event; their ids."""
    rows = run_sql(
        db,
        "WITH people AS ("
        " INSERT INTO attendees (id, name, email)"
        " SELECT gen_random_uuid(), 'Guest ' || n, 'g' || n || '@bench.example'"
        " FROM generate_series(1, $2) AS n RETURNING id"
        "), made AS ("
        " INSERT INTO registrations (id, event_id, attendee_id, status, seq, confirmed_at)"
        " SELECT gen_random_uuid(), $1, id, 'confirmed', row_number() OVER (), now()"
        " FROM people RETURNING id"
        "), counted AS ("
        " UPDATE events SET confirmed_count = (SELECT count(*) FROM made),"
        " registration_seq = $2 WHERE id = $1"
        ") SELECT id FROM made",
        uuid.UUID(event_id),
        count,
    )
    run_sql(db, "ANALYZE registrations")
    return [str(row["id"]) for row in rows]


class Phase:
    """One phase's requests, sent over keep-alive connections; statuses and latencies."""

    def __init__(self, url: str, connections: int) -> None:
        self.url = url
        self.connections = connections

    def run(self, requests: list[tuple[str, str, bytes]]) -> dict[str, Any]:
        return trio.run(self._run, requests)

    async def _run(self, requests: list[tuple[str, str, bytes]]) -> dict[str, Any]:
        send, receive = trio.open_memory_channel[tuple[str, str, bytes]](len(requests))
        for request in requests:
            send.send_nowait(request)
        send.close()
        results: list[tuple[int, float]] = []

        async def worker(queue: trio.MemoryReceiveChannel[tuple[str, str, bytes]]) -> None:
            connection = await Connection.open(self.url)
            try:
                async for method, path, body in queue:
                    started = time.perf_counter()
                    status = await connection.request(method, path, body)
                    results.append((status, time.perf_counter() - started))
            finally:
                await connection.aclose()

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(self.connections):
                nursery.start_soon(worker, receive.clone())
        wall = time.perf_counter() - started
        latencies = sorted(seconds for _status, seconds in results)
        return {
            "requests": len(results),
            "wall_s": wall,
            "per_s": len(results) / wall,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * percentile(latencies, 0.99),
            "statuses": dict(collections.Counter(status for status, _ in results)),
        }


def sign_all(key_file: Path, db: str, event_id: str) -> list[str]:
    """Every registration's ticket, signed here with the daemon's key (the same string the
    daemon issues: Ed25519 is deterministic), so the check-in phase needs no QR codes."""
    key = load_or_create_key(key_file)
    rows = run_sql(
        db,
        "SELECT r.id, a.name, r.confirmed_at FROM registrations r"
        " JOIN attendees a ON a.id = r.attendee_id WHERE r.event_id = $1 ORDER BY r.seq",
        uuid.UUID(event_id),
    )
    return [
        key.sign(Ticket(row["id"], uuid.UUID(event_id), row["name"],
                        issued_at(row["confirmed_at"])))
        for row in rows
    ]


def line(name: str, r: dict[str, Any]) -> str:
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
    return (f"{name:>9}: {r['requests']:>6} in {r['wall_s']:6.2f} s = {r['per_s']:7.0f}/s,"
            f" p50 {r['p50_ms']:5.1f} ms, p99 {r['p99_ms']:6.1f} ms ({statuses})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--issue", type=int, default=500,
                        help="tickets issued over HTTP (each draws a QR code)")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()

    with postgres_admin() as admin, tempfile.TemporaryDirectory() as tmp:
        print("\n".join(machine(admin)))
        key_file = Path(tmp) / "ticket-key"
        with daemon_on_scratch_database(
            admin, Path(tmp), email={"transport": "none"}, tickets={"key_file": str(key_file)},
        ) as (daemon, db):
            event = create_event(daemon.url, max(1, args.tickets), name="Check-in bench")
            registrations = fill(db, event["id"], args.tickets)
            phase = Phase(daemon.url, args.connections)
            print(f"checkins: {args.tickets} tickets for one event, {args.connections}"
                  " connections")
            phase.run([("GET", f"/events/{event['id']}", b"")] * 500)  # warm up
            reads = phase.run([("GET", f"/events/{event['id']}", b"")] * args.tickets)
            print(line("read", reads), flush=True)
            issue = phase.run(
                [("GET", f"/registrations/{r}/ticket", b"") for r in registrations[:args.issue]]
            )
            print(line("issue", issue), flush=True)
            tickets = sign_all(key_file, db, event["id"])
            issued = httpx.get(f"{daemon.url}/registrations/{registrations[0]}/ticket").json()
            assert issued["ticket"] == tickets[0], "the daemon signs another ticket"
            bodies = [json.dumps({"ticket": t}).encode() for t in tickets]
            first = phase.run([("POST", "/checkins", body) for body in bodies])
            print(line("check-in", first), flush=True)
            again = phase.run([("POST", "/checkins", body) for body in bodies])
            print(line("re-scan", again), flush=True)
            reads_after = phase.run([("GET", f"/events/{event['id']}", b"")] * args.tickets)
            print(line("read", reads_after), flush=True)
            read_rate = (reads["per_s"] + reads_after["per_s"]) / 2
            [row] = run_sql(db, "SELECT checked_in_count FROM events WHERE id = $1",
                            uuid.UUID(event["id"]))
            assert first["statuses"] == {201: args.tickets}, first["statuses"]
            assert again["statuses"] == {409: args.tickets}, again["statuses"]
            assert row["checked_in_count"] == args.tickets, row
            ratio = first["per_s"] / read_rate
            verdict = "pass" if ratio >= GOAL_RATIO else "MISS"
            print(f"check-in / read = {ratio:.2f} (goal ≥ {GOAL_RATIO}) {verdict};"
                  f" re-scan / read = {again['per_s'] / read_rate:.2f};"
                  f" in the database: {row['checked_in_count']} checked in")


if __name__ == "__main__":
    main()
