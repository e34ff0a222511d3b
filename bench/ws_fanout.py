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
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from tests.support import DaemonProcess, postgres_server, run_sql, scratch_database


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def run(subscribers: int, rate: float, seconds: float, workdir: Path, admin: str) -> dict:
    updates = int(rate * seconds)
    with scratch_database(admin) as db:
        daemon = DaemonProcess(db, workdir, websocket={"queue_size": 256}).start()
        try:
            client = httpx.Client(base_url=daemon.url, timeout=30)
            event = client.post("/events", json={
                "name": "Fan-out", "date": "2099-01-01T10:00:00Z",
                "location": f"Bench {uuid.uuid4().hex[:8]}", "maxAttendees": 1_000_000}).json()
            attendees = [uuid.uuid4() for _ in range(updates)]
            run_sql(db, "INSERT INTO attendees (id, name, email) SELECT id, 'b', id || '@b.org'"
                        " FROM unnest($1::uuid[]) id", attendees)
            assert client.get("/health").status_code == 200
            time.sleep(0.5)
            rss_before = rss_kib(daemon.process.pid)
            result_path = workdir / "subscribers.json"
            subs = subprocess.Popen(
                [sys.executable, "-m", "bench.ws_subscribers", daemon.url, event["id"],
                 str(subscribers), str(1 + updates), str(result_path)],
                stdout=subprocess.PIPE, text=True)
            assert subs.stdout is not None
            assert subs.stdout.readline().strip() == "ready"
            time.sleep(1.0)
            rss_idle = rss_kib(daemon.process.pid)
            started = time.perf_counter()
            for n, attendee in enumerate(attendees):
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                r = client.post("/registrations", json={
                    "eventId": event["id"], "attendeeId": str(attendee)})
                assert r.status_code == 201, r.text
            sent_seconds = time.perf_counter() - started
            subs.wait(timeout=180)
            out = json.loads(result_path.read_text())
        finally:
            daemon.stop()
    expected = list(range(2, 2 + updates))
    complete = sum(1 for c in out["connections"] if c["seqs"] == expected)
    delays = sorted(d for c in out["connections"] for d in c["delays"])
    delivered = sum(len(c["seqs"]) for c in out["connections"])
    return {
        "subscribers": subscribers, "rate": rate, "updates": updates,
        "complete": complete,
        "p50_ms": 1000 * statistics.median(delays) if delays else float("nan"),
        "p99_ms": 1000 * delays[int(len(delays) * 0.99) - 1] if delays else float("nan"),
        "delivered_per_s": delivered / max(out["wall_seconds"], sent_seconds),
        "kib_per_idle_connection": (rss_idle - rss_before) / subscribers,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rate", type=float, nargs="+", default=[10, 100])
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    print(f"{'subs':>5} {'upd/s':>6} {'updates':>7} {'all got all':>11} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'msgs/s':>8} {'KiB/idle conn':>13}")
    with postgres_server() as admin, tempfile.TemporaryDirectory() as tmp:
        for subscribers in args.subscribers:
            for rate in args.rate:
                r = run(subscribers, rate, args.seconds, Path(tmp), admin)
                print(f"{r['subscribers']:>5} {r['rate']:>6.0f} {r['updates']:>7} "
                      f"{r['complete']:>5}/{r['subscribers']:<5} {r['p50_ms']:>8.1f} "
                      f"{r['p99_ms']:>8.1f} {r['delivered_per_s']:>8.0f} "
                      f"{r['kib_per_idle_connection']:>13.1f}", flush=True)


if __name__ == "__main__":
    main()
