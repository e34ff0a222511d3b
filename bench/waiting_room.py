"""The waiting room: N subscribers of one queued event while its queue moves, and joins.

    python -m bench.waiting_room [--subscribers 1000 5000] [--processes 4]
                                 [--workers 1] [--seconds 10] [--join-rate 2000]
                                 [--join-seconds 3] [--ping-seconds 20]

The real daemon on a scratch database; an event with an admission queue
(1,000 admitted a second) and 40,000 tickets joined before its opening, so it
moves for the whole run. The subscribers are spread over ``--processes``
client processes (bench.queue_subscribers; the file-descriptor limit raised
to the hard limit; loopback only). Once every one has its snapshot, the
queue opens (a PATCH of salesStartAt) and moves for ``--seconds``: each
daemon sends one ``queueUpdate`` a second to all its subscribers. Then, with
the subscribers still there, joins (``POST /events/{id}/queue``) are offered
open loop at ``--join-rate`` for ``--join-seconds`` (bench.open_loop).

Prints, per N: connections held; the daemon's RSS per connection (all
workers, from before the first connection to all connected); each tick's
delivery lag to every subscriber (arrival − the message's ``at``, the
database's clock when it was computed; same machine) as p50/p99/max over the
ticks of the moving window; how many subscribers got every tick (no gap over
1.5 s between two, none missing at either end); the daemon's CPU per tick (its
processes' CPU over the window ÷ the ticks its workers sent; the fan-out,
the tick's read and everything else the daemon did meanwhile, PostgreSQL
not included); and the joins' throughput, p50/p99 and statuses, with the
daemon's CPU per join over the open-loop run two ways: all of it, and net of
what the held connections cost meanwhile anyway (the moving window's CPU a
second times the run's length: ticks, and pings and pongs when a round falls
in the window); and where the machine's cores went during the joins (the
subscribers' processes, and every process's together).

20,000 connections need ``--workers 2``: a process may hold at most 20,000
open files on these machines (``ulimit -Hn``), and a worker needs some for
itself (README, operations notes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    cpu_seconds,
    daemon_on_scratch_database,
    percentile,
    postgres_admin,
    rss_kib,
)
from bench.open_loop import run_open_loop
from bench.queue_subscribers import await_ready, killed_at_exit, start_queue_subscribers, stop_at
from tests.support import run_sql

PRE_SALE_TICKETS = 40_000
RATE_PER_MINUTE = 60_000  # a thousand a second: 40,000 keep it moving for 40 s
GAP_SECONDS = 1.5  # two ticks further apart than this: one was missed


def _prefill(db: str, event_id: str) -> None:
    """The pre-sale joiners, in one statement (as the writer's batches would make them)."""
    run_sql(
        db,
        "SELECT count(*) FROM eventd_queue_join("
        " array_fill($1::uuid, ARRAY[$2::integer]),"
        " ARRAY(SELECT sha256(('bench-' || i)::bytea) FROM generate_series(1, $2) AS i))",
        uuid.UUID(event_id),
        PRE_SALE_TICKETS,
    )


def run(subscribers: int, processes: int, workers: int, seconds: float, join_rate: float,
        join_seconds: float, workdir: Path, admin: str, ping_seconds: float = 20.0
        ) -> dict[str, Any]:
    sections: dict[str, dict[str, Any]] = {
        "server": {"workers": workers, "max_connections": 0, "max_connections_per_client": 0},
        "limits": {"requests_per_second_per_client": 0},
        "websocket": {"ping_interval_seconds": ping_seconds},
    }
    with daemon_on_scratch_database(admin, workdir, **sections) as (daemon, db):
        assert daemon.process is not None
        pid = daemon.process.pid
        client = httpx.Client(base_url=daemon.url, timeout=60)
        far = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        created = client.post("/events", json={
            "name": "Waiting room", "date": "2031-01-01T10:00:00Z", "maxAttendees": 1000,
            "location": f"Bench {time.time_ns()}", "salesStartAt": far,
            "admission": {"ratePerMinute": RATE_PER_MINUTE, "tokenMinutes": 10},
        })
        assert created.status_code == 201, created.text
        event_id = created.json()["id"]
        _prefill(db, event_id)
        time.sleep(1.0)
        rss_before = rss_kib(pid)
        shares = [subscribers // processes + (n < subscribers % processes)
                  for n in range(processes)]
        results = [workdir / f"subscribers-{n}.json" for n in range(processes)]
        clients = [start_queue_subscribers(daemon.url, event_id, share, path)
                   for share, path in zip(shares, results, strict=True) if share]
        with killed_at_exit(clients):
            for process in clients:
                await_ready(process)
            time.sleep(1.0)
            rss_all = rss_kib(pid)
            opened = client.patch(f"/events/{event_id}",
                                  json={"salesStartAt": datetime.now(UTC).isoformat()})
            assert opened.status_code == 200, opened.text
            window_start = time.time()
            cpu_start = cpu_seconds(pid)
            time.sleep(seconds)
            cpu_window = cpu_seconds(pid) - cpu_start
            window_end = time.time()
            for process in clients:
                stop_at(process, window_end + join_seconds + 4.0)
            cpu_joins = cpu_seconds(pid)
            cpu_clients = sum(cpu_seconds(process.pid) for process in clients)
            busy_start = _machine_busy()
            joins_start = time.monotonic()
            joins = run_open_loop(
                daemon.url, [("POST", f"/events/{event_id}/queue", "")],
                rate=join_rate, seconds=join_seconds, workdir=workdir,
            )
            cpu_joins = cpu_seconds(pid) - cpu_joins
            joins_wall = time.monotonic() - joins_start
            busy = [b - a for a, b in zip(busy_start, _machine_busy(), strict=True)]
            cpu_clients = sum(cpu_seconds(process.pid) for process in clients) - cpu_clients
            answered = sum(joins.statuses.values())
            for process in clients:
                process.wait(timeout=120)
        connections = [c for path in results if path.exists()
                       for c in json.loads(path.read_text())["connections"]]
    held = sum(1 for c in connections if c["held"])
    in_window = [[(at, delay) for at, delay in zip(c["ats"], c["delays"], strict=True)
                  if window_start <= at < window_end] for c in connections]
    delays = sorted(delay for c in in_window for _, delay in c)
    ticks = {at for c in in_window for at, _ in c}
    complete = sum(1 for c in in_window if _every_tick(c, window_start, window_end))
    # The lag of the ticks sent while joins came in (the window after the moving one).
    during_joins = sorted(d for c in connections for at, d in zip(c["ats"], c["delays"],
                                                               strict=True)
                          if at >= window_end)
    return {
        "subscribers": subscribers,
        "workers": workers,
        "held": held,
        "kib_per_connection": (rss_all - rss_before) / max(1, held),
        "ticks": len(ticks),
        "ticks_each": statistics.median(len(c) for c in in_window) if in_window else 0,
        "complete": complete,
        "p50_ms": 1000 * statistics.median(delays) if delays else float("nan"),
        "p99_ms": 1000 * percentile(delays, 0.99),
        "max_ms": 1000 * delays[-1] if delays else float("nan"),
        "cpu_ms_per_tick": 1000 * cpu_window / max(1, len(ticks)),
        "p99_ms_during_joins": 1000 * percentile(during_joins, 0.99),
        "joins_per_s": joins.answered_in_window / joins.seconds,
        "joins_p50_ms": joins.p50_ms,
        "joins_p99_ms": joins.p99_ms,
        "join_statuses": joins.statuses,
        "generator_cpu": joins.generator_cpu,
        # Over the whole open-loop run, warm-up included, ticks and all.
        "cpu_us_per_join": 1e6 * cpu_joins / max(1, answered) if answered else float("nan"),
        # The same less what the held connections cost meanwhile anyway (ticks, pings,
        # pongs: the moving window's CPU a second, times the open-loop run's length).
        "net_cpu_us_per_join": (1e6 * (cpu_joins - cpu_window / (window_end - window_start)
                                       * joins_wall) / answered) if answered else float("nan"),
        # Where the machine's cores went meanwhile: the subscribers' processes (the
        # ticks' other end), and every process's together (the daemon, PostgreSQL, the
        # generator, the subscribers, anyone else's), in cores.
        "clients_cores_during_joins": cpu_clients / joins_wall,
        "machine_busy_during_joins": busy[0] / max(1e-9, busy[1]) * (os.cpu_count() or 1),
    }


def _machine_busy() -> tuple[float, float]:
    """The machine's busy and total CPU time so far (all cores, /proc/stat's first line)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def _every_tick(received: list[tuple[float, float]], start: float, end: float) -> bool:
    ats = sorted(at for at, _ in received)
    if not ats:
        return False
    edges = [ats[0] - start, end - ats[-1]]
    gaps = [b - a for a, b in zip(ats, ats[1:], strict=False)]
    return max(edges + gaps) <= GAP_SECONDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--join-rate", type=float, default=2000.0)
    parser.add_argument("--join-seconds", type=float, default=3.0)
    parser.add_argument("--ping-seconds", type=float, default=20.0,
                        help="websocket.ping_interval_seconds (the default's)")
    args = parser.parse_args()
    print(f"{'subs':>6} {'wrk':>3} {'held':>6} {'KiB/conn':>8} {'ticks':>5} {'got all':>13}"
          f" {'each':>4} {'lag p50':>8} {'p99':>7} {'max':>7} {'CPU/tick':>9} {'joins/s':>8}"
          f" {'join p50':>8} {'p99':>7} {'CPU/join':>8} {'net':>6} {'lag p99 then':>12}"
          f" {'cores: clients':>14} {'all':>4}  statuses")
    with postgres_admin() as admin, tempfile.TemporaryDirectory() as tmp:
        for subscribers in args.subscribers:
            r = run(subscribers, args.processes, args.workers, args.seconds, args.join_rate,
                    args.join_seconds, Path(tmp), admin, args.ping_seconds)
            print(f"{r['subscribers']:>6} {r['workers']:>3} {r['held']:>6}"
                  f" {r['kib_per_connection']:>8.1f} {r['ticks']:>5}"
                  f" {r['complete']:>6}/{r['held']:<6} {r['ticks_each']:>4.0f}"
                  f" {r['p50_ms']:>6.0f}ms"
                  f" {r['p99_ms']:>5.0f}ms {r['max_ms']:>5.0f}ms {r['cpu_ms_per_tick']:>7.1f}ms"
                  f" {r['joins_per_s']:>8.0f} {r['joins_p50_ms']:>6.1f}ms"
                  f" {r['joins_p99_ms']:>5.0f}ms {r['cpu_us_per_join']:>6.0f}µs"
                  f" {r['net_cpu_us_per_join']:>4.0f}µs"
                  f" {r['p99_ms_during_joins']:>10.0f}ms"
                  f" {r['clients_cores_during_joins']:>14.2f}"
                  f" {r['machine_busy_during_joins']:>4.2f}"
                  f"  {r['join_statuses']}"
                  f" (generator {r['generator_cpu']:.0%} of a core)", flush=True)


if __name__ == "__main__":
    main()
