"""Email outbox: delivery throughput to a local SMTP server, and what a registration pays for it.

    python -m bench.email_outbox [--messages 2000] [--baseline REV]

1. Throughput: queue N messages, start a daemon with ``email.transport =
   "smtp"`` against aiosmtpd on loopback, and time until all are sent.
2. With ``--baseline REV`` (a commit without the outbox, e.g. the one before
   it landed): registration latency A/B, same run, same machine — 300
   sequential registrations (one connection) and a 1,000-attempt burst,
   against the current tree and against REV checked out in a git worktree.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from bench.burst import burst
from bench.harness import (
    create_event,
    daemon_on_scratch_database,
    insert_attendees,
    percentile,
    postgres_admin,
)
from tests.support import DaemonProcess, free_port, run_sql, scratch_database

PAYLOAD = (
    '{"event": {"id": "e", "name": "Bench", "startsAt": "2030-01-01T10:00:00+00:00",'
    ' "endsAt": "2030-01-01T11:00:00+00:00", "location": "Hall"},'
    ' "attendee": {"id": "a", "name": "B", "email": "b@x.org"},'
    ' "registration": {"id": "r", "status": "confirmed"}}'
)


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.count += 1
        return "250 OK"


def throughput(admin: str, workdir: Path, messages: int) -> float:
    sink = Sink()
    smtp = Controller(
        sink, hostname="127.0.0.1", port=free_port(), loop=asyncio.SelectorEventLoop()
    )
    smtp.start()
    try:
        with scratch_database(admin) as db:
            daemon = DaemonProcess(db, workdir, email={"transport": "none"}).start()
            daemon.stop()  # migrated; now queue the messages while nothing sends
            run_sql(
                db,
                "INSERT INTO email_outbox (kind, recipient, payload)"
                " SELECT 'reminder', 'r' || n || '@x.org', $1::jsonb"
                " FROM generate_series(1, $2) n",
                PAYLOAD,
                messages,
            )
            started = time.perf_counter()
            daemon = DaemonProcess(
                db,
                workdir,
                email={
                    "transport": "smtp",
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "security": "none",
                },
            ).start()
            try:
                while sink.count < messages:
                    time.sleep(0.05)
                elapsed = time.perf_counter() - started
            finally:
                daemon.stop()
    finally:
        smtp.stop()
    return messages / elapsed


def sequential_latency(url: str, db: str, count: int) -> tuple[float, float]:
    client = httpx.Client(base_url=url)
    event = create_event(url, 100_000, name="Seq")
    ids = insert_attendees(db, count)
    latencies = []
    for attendee in ids:
        started = time.perf_counter()
        r = client.post(
            "/registrations", json={"eventId": event["id"], "attendeeId": str(attendee)}
        )
        latencies.append(time.perf_counter() - started)
        assert r.status_code == 201, r.text
    latencies.sort()
    return 1000 * statistics.median(latencies), 1000 * percentile(latencies, 0.99)


def registration_ab(admin: str, workdir: Path, baseline: str) -> None:
    tree = Path(tempfile.mkdtemp(prefix="eventd-baseline-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), baseline], check=True, capture_output=True
    )
    try:
        print(
            f"{'version':>10} {'seq p50 ms':>10} {'seq p99 ms':>10} {'burst/s':>8} "
            f"{'burst p99 ms':>12}"
        )
        for label, path in (("baseline", str(tree)), ("current", "")):
            os.environ["PYTHONPATH"] = path  # the daemon process imports eventd from here
            try:
                with daemon_on_scratch_database(admin, workdir) as (daemon, db):
                    p50, p99 = sequential_latency(daemon.url, db, 300)
                    b = burst([daemon.url], db, 1000, 1000, 200, workdir)
            finally:
                os.environ.pop("PYTHONPATH", None)
            print(
                f"{label:>10} {p50:>10.2f} {p99:>10.2f} {b['attempts_per_s']:>8.0f} "
                f"{b['p99_ms']:>12.1f}",
                flush=True,
            )
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(tree)], check=False, capture_output=True
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--baseline", help="a commit without the outbox, for the A/B")
    args = parser.parse_args()
    with postgres_admin() as admin, tempfile.TemporaryDirectory() as tmp:
        rate = throughput(admin, Path(tmp), args.messages)
        print(f"outbox → local SMTP (aiosmtpd): {args.messages} messages, {rate:.0f} messages/s")
        if args.baseline:
            registration_ab(admin, Path(tmp), args.baseline)


if __name__ == "__main__":
    main()
