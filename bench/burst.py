"""The ticket-rush burst: N attempts at once for an event of capacity C.

    python -m bench.burst [--attempts 1000] [--capacity 100] [--connections 200]

Starts the real daemon (once alone, then two daemons on one database) against
a scratch database on $TEST_DATABASE_URL or the local PostgreSQL, makes the
attendees, fires every attempt at once from a separate load process, and
prints confirmed/full/other counts, registrations per second and latency.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

from tests.support import DaemonProcess, postgres_server, run_sql, scratch_database


def burst(urls: list[str], db: str, attempts: int, capacity: int, connections: int,
          workdir: Path) -> dict[str, float | int]:
    event = httpx.post(f"{urls[0]}/events", json={
        "name": "Ticket drop", "date": "2099-01-01T10:00:00Z",
        "location": f"Bench {uuid.uuid4().hex[:8]}", "maxAttendees": capacity}).json()
    attendees = [uuid.uuid4() for _ in range(attempts)]
    run_sql(db, "INSERT INTO attendees (id, name, email) SELECT id, 'b', id || '@bench.org'"
                " FROM unnest($1::uuid[]) id", attendees)
    jobs = workdir / "jobs.json"
    result = workdir / "result.json"
    jobs.write_text(json.dumps({"urls": urls, "connections": connections, "requests": [
        ["/registrations", json.dumps({"eventId": event["id"], "attendeeId": str(a)})]
        for a in attendees]}))
    subprocess.run([sys.executable, "-m", "bench.loadgen", str(jobs), str(result)], check=True)
    out = json.loads(result.read_text())
    statuses = collections.Counter(r[0] for r in out["results"])
    latencies = sorted(r[1] for r in out["results"])
    confirmed = run_sql(db, "SELECT confirmed_count FROM events WHERE id = $1",
                        uuid.UUID(event["id"]))[0]["confirmed_count"]
    return {
        "201": statuses.get(201, 0), "409": statuses.get(409, 0),
        "other": sum(v for k, v in statuses.items() if k not in (201, 409)),
        "confirmed_in_db": confirmed,
        "wall_s": out["wall_seconds"],
        "attempts_per_s": attempts / out["wall_seconds"],
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--capacity", type=int, default=100)
    parser.add_argument("--connections", type=int, default=200)
    args = parser.parse_args()
    print(f"burst: {args.attempts} attempts, capacity {args.capacity}, "
          f"{args.connections} connections")
    print(f"{'daemons':>8} {'201':>5} {'409':>5} {'other':>5} {'in db':>6} {'wall s':>7} "
          f"{'attempts/s':>11} {'p50 ms':>7} {'p99 ms':>7}")
    with postgres_server() as admin, tempfile.TemporaryDirectory() as tmp:
        for count in (1, 2):
            with scratch_database(admin) as db:
                daemons = [DaemonProcess(db, Path(tmp)).start() for _ in range(count)]
                try:
                    r = burst([d.url for d in daemons], db, args.attempts, args.capacity,
                              args.connections, Path(tmp))
                finally:
                    for d in daemons:
                        d.stop()
            print(f"{count:>8} {r['201']:>5} {r['409']:>5} {r['other']:>5} "
                  f"{r['confirmed_in_db']:>6} {r['wall_s']:>7.3f} {r['attempts_per_s']:>11.0f} "
                  f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f}")


if __name__ == "__main__":
    main()
