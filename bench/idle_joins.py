"""Joins while N connections idle: does a join cost more the more connections a daemon holds?

    python -m bench.idle_joins [--subscribers 1000 8000] [--workers 1] [--join-rate 2000]
                               [--join-seconds 3]

The waiting room's control (bench.waiting_room): the same N subscribers
(bench.queue_subscribers, spread over 4 processes) and the same joins offered
open loop, but the subscribers follow a second queued event that nobody
joins, so after its snapshot nothing is sent to them (and pings are set 600 s
apart): the connections are held, idle. Prints, per N: the daemon's CPU a
second while they idle, the joins' throughput and p50/p99, and the daemon's
CPU per join over the open-loop run, all of it and net of the idle rate.
If a join's cost grew with the connections held, it would show here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.harness import cpu_seconds, daemon_on_scratch_database, postgres_admin
from bench.open_loop import run_open_loop
from bench.queue_subscribers import await_ready, killed_at_exit, start_queue_subscribers, stop_at

PROCESSES = 4
IDLE_SECONDS = 3.0


def _queued_event(client: httpx.Client, name: str) -> str:
    created = client.post("/events", json={
        "name": name, "date": "2031-01-01T10:00:00Z", "maxAttendees": 1000,
        "location": f"Bench {time.time_ns()}",
        "salesStartAt": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "admission": {"ratePerMinute": 60_000, "tokenMinutes": 10},
    })
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def run(subscribers: int, workers: int, join_rate: float, join_seconds: float,
        workdir: Path, admin: str) -> dict[str, Any]:
    sections: dict[str, dict[str, Any]] = {
        "server": {"workers": workers, "max_connections": 0, "max_connections_per_client": 0},
        "limits": {"requests_per_second_per_client": 0},
        "websocket": {"ping_interval_seconds": 600},
    }
    with daemon_on_scratch_database(admin, workdir, **sections) as (daemon, _db):
        assert daemon.process is not None
        pid = daemon.process.pid
        client = httpx.Client(base_url=daemon.url, timeout=60)
        idle_event, joined_event = _queued_event(client, "Idle"), _queued_event(client, "Joined")
        shares = [subscribers // PROCESSES + (n < subscribers % PROCESSES)
                  for n in range(PROCESSES)]
        clients = [start_queue_subscribers(daemon.url, idle_event, share,
                                           workdir / f"idle-{n}.json")
                   for n, share in enumerate(shares) if share]
        with killed_at_exit(clients):
            for process in clients:
                await_ready(process)
            time.sleep(IDLE_SECONDS)  # the snapshots' writes over
            cpu, start = cpu_seconds(pid), time.monotonic()
            time.sleep(IDLE_SECONDS)
            idle_rate = (cpu_seconds(pid) - cpu) / (time.monotonic() - start)
            for process in clients:
                stop_at(process, time.time() + join_seconds + 30.0)
            cpu, start = cpu_seconds(pid), time.monotonic()
            joins = run_open_loop(
                daemon.url, [("POST", f"/events/{joined_event}/queue", "")],
                rate=join_rate, seconds=join_seconds, workdir=workdir,
            )
            cpu, wall = cpu_seconds(pid) - cpu, time.monotonic() - start
            for process in clients:
                process.kill()
    answered = max(1, sum(joins.statuses.values()))
    return {
        "subscribers": subscribers,
        "idle_cores": idle_rate,
        "joins_per_s": joins.answered_in_window / joins.seconds,
        "joins_p50_ms": joins.p50_ms,
        "joins_p99_ms": joins.p99_ms,
        "cpu_us_per_join": 1e6 * cpu / answered,
        "net_cpu_us_per_join": 1e6 * (cpu - idle_rate * wall) / answered,
        "join_statuses": joins.statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1000, 8000])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--join-rate", type=float, default=2000.0)
    parser.add_argument("--join-seconds", type=float, default=3.0)
    args = parser.parse_args()
    print(f"{'held':>6} {'idle CPU':>8} {'joins/s':>8} {'join p50':>9} {'p99':>7}"
          f" {'CPU/join':>8} {'net':>6}  statuses")
    with postgres_admin() as admin, tempfile.TemporaryDirectory() as tmp:
        for subscribers in args.subscribers:
            r = run(subscribers, args.workers, args.join_rate, args.join_seconds, Path(tmp), admin)
            print(f"{r['subscribers']:>6} {r['idle_cores']:>7.3f}c {r['joins_per_s']:>8.0f}"
                  f" {r['joins_p50_ms']:>7.0f}ms {r['joins_p99_ms']:>5.0f}ms"
                  f" {r['cpu_us_per_join']:>6.0f}µs {r['net_cpu_us_per_join']:>4.0f}µs"
                  f"  {r['join_statuses']}", flush=True)


if __name__ == "__main__":
    main()
