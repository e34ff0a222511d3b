"""The ticket-rush burst: N attempts at once for an event of capacity C.

    python -m bench.burst [--attempts 1000] [--capacity 100] [--connections 200]

Starts the real daemon (once alone, then two daemons on one database) against
a scratch database (bench.harness), makes the attendees, fires every attempt
at once from a separate load process (bench.loadgen), and prints
confirmed/full/other counts, registrations per second and latency.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from bench.harness import (
    create_event,
    insert_attendees,
    percentile,
    postgres_admin,
    running_daemon,
)
from tests.support import run_sql, scratch_database


def burst(
    urls: list[str], db: str, attempts: int, capacity: int, connections: int, workdir: Path
) -> dict[str, float | int]:
    """Fire ``attempts`` registrations at once at a new event of ``capacity`` seats."""
    event = create_event(urls[0], capacity, name="Ticket drop")
    attendees = insert_attendees(db, attempts)
    jobs = workdir / "jobs.json"
    result = workdir / "result.json"
    jobs.write_text(
        json.dumps(
            {
                "urls": urls,
                "connections": connections,
                "requests": [
                    ["/registrations", json.dumps({"eventId": event["id"], "attendeeId": str(a)})]
                    for a in attendees
                ],
            }
        )
    )
    subprocess.run([sys.executable, "-m", "bench.loadgen", str(jobs), str(result)], check=True)
    out = json.loads(result.read_text())
    statuses = collections.Counter(r[0] for r in out["results"])
    latencies = sorted(r[1] for r in out["results"])
    confirmed = run_sql(
        db,
        "SELECT confirmed_count, (SELECT count(*) FROM registrations"
        " WHERE event_id = $1 AND status = 'confirmed') AS rows"
        " FROM events WHERE id = $1",
        uuid.UUID(event["id"]),
    )[0]
    return {
        "201": statuses.get(201, 0),
        "409": statuses.get(409, 0),
        "other": sum(v for k, v in statuses.items() if k not in (201, 409)),
        "confirmed_in_db": confirmed["confirmed_count"],
        "confirmed_rows": confirmed["rows"],
        "wall_s": out["wall_seconds"],
        "attempts_per_s": attempts / out["wall_seconds"],
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--capacity", type=int, default=100)
    parser.add_argument("--connections", type=int, default=200)
    args = parser.parse_args()
    print(
        f"burst: {args.attempts} attempts, capacity {args.capacity}, {args.connections} connections"
    )
    print(
        f"{'daemons':>8} {'201':>5} {'409':>5} {'other':>5} {'in db':>6} {'wall s':>7} "
        f"{'attempts/s':>11} {'p50 ms':>7} {'p99 ms':>7}"
    )
    with postgres_admin() as admin, tempfile.TemporaryDirectory() as tmp:
        for count in (1, 2):
            with scratch_database(admin) as db, contextlib.ExitStack() as daemons:
                urls = [
                    daemons.enter_context(running_daemon(db, Path(tmp))).url for _ in range(count)
                ]
                r = burst(urls, db, args.attempts, args.capacity, args.connections, Path(tmp))
            print(
                f"{count:>8} {r['201']:>5} {r['409']:>5} {r['other']:>5} "
                f"{r['confirmed_in_db']:>6} {r['wall_s']:>7.3f} {r['attempts_per_s']:>11.0f} "
                f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f}"
            )


if __name__ == "__main__":
    main()
