"""WebSocket fan-out: many subscribers on one event while registrations arrive.

    python -m bench.ws_fanout [--subscribers 1000] [--rate 100] [--seconds 5]

Starts the real daemon on a scratch database, opens the subscribers from a
separate process (bench.ws_subscribers), measures the daemon's RSS per idle
connection, then registers at a steady rate and reports: whether every
subscriber got every update, delivery latency from COMMIT to client
(p50/p99), and messages delivered per second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    create_event,
    daemon_on_scratch_database,
    insert_attendees,
    percentile,
    postgres_admin,
    rss_kib,
)
from bench.ws_subscribers import open_subscribers


def run(subscribers: int, rate: float, seconds: float, workdir: Path, admin: str) -> dict[str, Any]:
    updates = int(rate * seconds)
    result_path = workdir / "subscribers.json"
    with daemon_on_scratch_database(admin, workdir, websocket={"queue_size": 256}) as (daemon, db):
        assert daemon.process is not None
        client = httpx.Client(base_url=daemon.url, timeout=30)
        event = create_event(daemon.url, 1_000_000, name="Fan-out")
        attendees = insert_attendees(db, updates)
        assert client.get("/health").status_code == 200
        time.sleep(0.5)
        rss_before = rss_kib(daemon.process.pid)
        with open_subscribers(daemon.url, event["id"], subscribers, 1 + updates, result_path):
            time.sleep(1.0)
            rss_idle = rss_kib(daemon.process.pid)
            started = time.perf_counter()
            for n, attendee in enumerate(attendees):
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                r = client.post(
                    "/registrations", json={"eventId": event["id"], "attendeeId": str(attendee)}
                )
                assert r.status_code == 201, r.text
            sent_seconds = time.perf_counter() - started
        out = json.loads(result_path.read_text())
    expected = list(range(2, 2 + updates))
    complete = sum(1 for c in out["connections"] if c["seqs"] == expected)
    delays = sorted(d for c in out["connections"] for d in c["delays"])
    delivered = sum(len(c["seqs"]) for c in out["connections"])
    return {
        "subscribers": subscribers,
        "rate": rate,
        "updates": updates,
        "complete": complete,
        "p50_ms": 1000 * statistics.median(delays) if delays else float("nan"),
        "p99_ms": 1000 * percentile(delays, 0.99),
        "delivered_per_s": delivered / max(out["wall_seconds"], sent_seconds),
        "kib_per_idle_connection": (rss_idle - rss_before) / subscribers,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rate", type=float, nargs="+", default=[10, 100])
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    print(
        f"{'subs':>5} {'upd/s':>6} {'updates':>7} {'all got all':>11} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'msgs/s':>8} {'KiB/idle conn':>13}"
    )
    with postgres_admin() as admin, tempfile.TemporaryDirectory() as tmp:
        for subscribers in args.subscribers:
            for rate in args.rate:
                r = run(subscribers, rate, args.seconds, Path(tmp), admin)
                print(
                    f"{r['subscribers']:>5} {r['rate']:>6.0f} {r['updates']:>7} "
                    f"{r['complete']:>5}/{r['subscribers']:<5} {r['p50_ms']:>8.1f} "
                    f"{r['p99_ms']:>8.1f} {r['delivered_per_s']:>8.0f} "
                    f"{r['kib_per_idle_connection']:>13.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
