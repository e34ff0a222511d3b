"""Export of an event's registrations: wall time, and the daemon's memory while it streams.

    python -m bench.export [--rows 1000000] [--format csv,ndjson]

Issue #29's figure: export 1,000,000 registrations; the daemon's peak RSS
may grow at most 50 MiB over its idle RSS. The real daemon on a scratch
database (bench.harness); one event with ``--rows`` registrations (and as
many attendees) put in with one SQL statement, then each format exported
once through ``GET /events/{id}/registrations/export``, read by a client
in this process that counts the rows and throws the bytes away.

Idle is the daemon's RSS after the rows are in and a first, empty export
has warmed its code paths; the peak is sampled every few milliseconds
from ``/proc`` while the file streams. Prints the machine, then one line per
format: rows, size, wall time (first byte and last), rows/s, idle and peak
RSS, growth, and whether growth is within the goal.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    FAR_FUTURE,
    create_event,
    daemon_on_scratch_database,
    machine,
    postgres_admin,
    rss_kib,
)
from tests.support import DaemonProcess, run_sql

GOAL_GROWTH_MIB = 50.0
SAMPLE_SECONDS = 0.005
LINE_ENDS = {"csv": b"\r\n", "ndjson": b"\n"}


def fill(db: str, event_id: str, rows: int) -> float:
    """``rows`` attendees, each registered for the event; returns the seconds it took."""
    started = time.perf_counter()
    run_sql(
        db,
        "WITH people AS ("
        " INSERT INTO attendees (id, name, email)"
        " SELECT gen_random_uuid(), 'Attendee ' || n, 'a' || n || '@bench.example'"
        " FROM generate_series(1, $2) AS n RETURNING id"
        "), made AS ("
        " INSERT INTO registrations (id, event_id, attendee_id, status, seq, confirmed_at)"
        " SELECT gen_random_uuid(), $1, id, 'confirmed', row_number() OVER (), now()"
        " FROM people RETURNING 1"
        ") UPDATE events SET confirmed_count = (SELECT count(*) FROM made),"
        " registration_seq = $2 WHERE id = $1",
        uuid.UUID(event_id),
        rows,
    )
    run_sql(db, "ANALYZE attendees")
    run_sql(db, "ANALYZE registrations")
    return time.perf_counter() - started


class PeakRss:
    """The highest RSS of a process seen while the block runs, sampled from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
            time.sleep(SAMPLE_SECONDS)
        self.peak_kib = max(self.peak_kib, rss_kib(self.pid))


def export(url: str, event_id: str, kind: str) -> dict[str, Any]:
    """Stream one export to nowhere: its size, rows and timings."""
    size = lines = 0
    end = LINE_ENDS[kind]
    started = time.perf_counter()
    first_byte = None
    with httpx.stream("GET", f"{url}/events/{event_id}/registrations/export",
                      params={"format": kind}, timeout=600) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            if first_byte is None:
                first_byte = time.perf_counter() - started
            size += len(chunk)
            lines += chunk.count(end)
    return {
        "seconds": time.perf_counter() - started,
        "first_byte_seconds": first_byte or 0.0,
        "bytes": size,
        "rows": lines - (1 if kind == "csv" else 0),  # the CSV header
    }


def measure(daemon: DaemonProcess, event_id: str, kind: str) -> dict[str, Any]:
    assert daemon.process is not None
    pid = daemon.process.pid
    time.sleep(0.5)  # let the last request's garbage go
    idle = rss_kib(pid)
    with PeakRss(pid) as peak:
        result = export(daemon.url, event_id, kind)
    return {**result, "idle_kib": idle, "peak_kib": peak.peak_kib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", default="csv,ndjson", help="csv, ndjson or both")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.format.split(",") if k.strip()]
    if not kinds or any(k not in LINE_ENDS for k in kinds):
        parser.error("--format takes csv, ndjson or csv,ndjson")

    with postgres_admin() as admin, tempfile.TemporaryDirectory() as tmp:
        print("\n".join(machine(admin)))
        with daemon_on_scratch_database(
            admin, Path(tmp), email={"transport": "none"}
        ) as (daemon, db):
            event = create_event(daemon.url, 1_000_000, name="Export bench")
            empty = create_event(daemon.url, 1, name="Warm-up")
            seconds = fill(db, event["id"], args.rows)
            print(f"setup: {args.rows:,} registrations inserted in {seconds:.1f} s"
                  f" (event date {FAR_FUTURE})")
            for kind in kinds:
                export(daemon.url, empty["id"], kind)  # warm the path: imports, statements
            for kind in kinds:
                r = measure(daemon, event["id"], kind)
                assert r["rows"] == args.rows, f"{kind}: {r['rows']} rows, not {args.rows}"
                growth_mib = (r["peak_kib"] - r["idle_kib"]) / 1024
                verdict = "pass" if growth_mib <= GOAL_GROWTH_MIB else "MISS"
                print(
                    f"{kind:>6}: {r['rows']:,} rows, {r['bytes'] / 2**20:.1f} MiB in"
                    f" {r['seconds']:.2f} s (first byte {1000 * r['first_byte_seconds']:.0f} ms),"
                    f" {r['rows'] / r['seconds']:,.0f} rows/s,"
                    f" {r['bytes'] / 2**20 / r['seconds']:.1f} MiB/s;"
                    f" daemon RSS idle {r['idle_kib'] / 1024:.1f} MiB,"
                    f" peak {r['peak_kib'] / 1024:.1f} MiB,"
                    f" growth {growth_mib:.1f} MiB (goal ≤ {GOAL_GROWTH_MIB:.0f}) {verdict}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
