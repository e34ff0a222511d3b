"""Webhooks: delivery throughput and lag to a receiver on loopback, and what registrations pay.

    python -m bench.webhooks [--messages 5000] [--changes 200] [--attempts 2000] [--rounds 4]

1. Throughput: one daemon, one endpoint subscribed to everything; ``--messages``
   messages committed in one transaction; time from that COMMIT until the
   receiver has them all (messages/s), and each message's lag (receipt − COMMIT).
2. Lag: ``--changes`` events created through the API one after another, 0.2 s
   apart and then 0.02 s apart; each message's lag from its change's commit (the
   body's ``timestamp``) to receipt. Both paces mark the daemon busy
   (eventd.storage.outbox); at the faster one a claim may hold more than one
   message, and the deliverer pauses between them.
3. Registrations with one endpoint subscribed to everything against none: a
   burst of ``--attempts`` registrations (bench.burst's load generator), the two
   alternated on the same daemon ``--rounds`` times in the order none, everything,
   everything, none, ... so a drift over the run falls on both alike (with an
   even ``--rounds``), each burst waiting for the mailer and the deliverer to
   catch up first; attempts/s and the ratio.

The receiver (tests.support.WebhookReceiver) runs in this process, the daemon
in its own; both on loopback.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import trio

from bench.burst import burst
from bench.harness import create_event, percentile, postgres_admin, wait_for_mailer
from eventd.storage.outbox import BUSY_WITHIN_SECONDS
from tests.support import DaemonProcess, WebhookReceiver, run_sql, scratch_database

SECTIONS: dict[str, dict[str, Any]] = {"webhooks": {"allow_private_targets": True}}


def _lags(received: list[float], committed: list[float]) -> tuple[float, float, float]:
    lags = sorted(1000 * (r - c) for r, c in zip(received, committed, strict=True))
    return statistics.median(lags), percentile(lags, 0.99), lags[-1]


async def _subscribe(url: str, receiver: WebhookReceiver) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post("/webhooks", json={"url": receiver.url, "types": ["*"]})
        response.raise_for_status()
        endpoint_id: str = response.json()["id"]
        return endpoint_id


async def _unsubscribe(url: str, endpoint_id: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        (await client.delete(f"/webhooks/{endpoint_id}")).raise_for_status()


async def _wait(receiver: WebhookReceiver, count: int, seconds: float = 300) -> None:
    await receiver.wait_for(count, seconds=seconds)


async def throughput(daemon: DaemonProcess, db: str, messages: int) -> None:
    async with trio.open_nursery() as nursery:
        receiver = WebhookReceiver()
        await nursery.start(receiver.serve)
        endpoint = await _subscribe(daemon.url, receiver)
        await trio.sleep(BUSY_WITHIN_SECONDS)  # the POST's commit is not a rush
        committed = await trio.to_thread.run_sync(lambda: run_sql(
            db,
            "WITH q AS (SELECT eventd_enqueue_webhook('event.created',"
            " json_build_object('n', n)) FROM generate_series(1, $1) n)"
            " SELECT (SELECT count(*) FROM q), extract(epoch FROM clock_timestamp()) AS at",
            messages,
        )[0]["at"])
        await _wait(receiver, messages)
        first, last = receiver.received[0].received_at, receiver.received[-1].received_at
        p50, p99, worst = _lags([d.received_at for d in receiver.received],
                                [float(committed)] * messages)
        print(f"throughput: {messages} messages in {last - float(committed):.2f} s ="
              f" {messages / (last - float(committed)):.0f}/s to one endpoint;"
              f" lag from COMMIT p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms;"
              f" first to last receipt {(messages - 1) / (last - first):.0f}/s", flush=True)
        await _unsubscribe(daemon.url, endpoint)
        nursery.cancel_scope.cancel()


async def lag(daemon: DaemonProcess, changes: int, gap_seconds: float) -> None:
    async with trio.open_nursery() as nursery:
        receiver = WebhookReceiver()
        await nursery.start(receiver.serve)
        endpoint = await _subscribe(daemon.url, receiver)
        for _ in range(changes):
            await trio.to_thread.run_sync(create_event, daemon.url, 10)
            await trio.sleep(gap_seconds)  # a steady trickle, not a backlog
        await _wait(receiver, changes)
        received = [d.received_at for d in receiver.received]
        committed = [datetime.fromisoformat(d.json()["timestamp"]).timestamp()
                     for d in receiver.received]
        p50, p99, worst = _lags(received, committed)
        print(f"lag: {changes} changes one at a time, {gap_seconds} s apart,"
              f" commit to receipt p50 {p50:.1f} ms,"
              f" p99 {p99:.1f} ms, max {worst:.1f} ms", flush=True)
        await _unsubscribe(daemon.url, endpoint)
        nursery.cancel_scope.cancel()


def _caught_up(db: str) -> None:
    wait_for_mailer(db)
    deadline = time.monotonic() + 300
    while run_sql(db, "SELECT 1 FROM webhook_deliveries WHERE delivered_at IS NULL"
                      " AND given_up_at IS NULL LIMIT 1"):
        if time.monotonic() > deadline:
            raise RuntimeError("the deliverer did not catch up")
        time.sleep(0.2)


async def registrations(
    daemon: DaemonProcess, db: str, attempts: int, rounds: int, workdir: Path
) -> None:
    rates: dict[str, list[float]] = {"none": [], "everything": []}
    async with trio.open_nursery() as nursery:
        receiver = WebhookReceiver()
        await nursery.start(receiver.serve)
        for n in range(rounds):
            for label in ("none", "everything")[::1 if n % 2 == 0 else -1]:
                endpoint = await _subscribe(daemon.url, receiver) if label != "none" else None
                result = await trio.to_thread.run_sync(
                    burst, [daemon.url], db, attempts, attempts, 200, workdir)
                rates[label].append(float(result["attempts_per_s"]))
                await trio.to_thread.run_sync(_caught_up, db)
                if endpoint is not None:
                    await _unsubscribe(daemon.url, endpoint)
        nursery.cancel_scope.cancel()
    none, every = statistics.median(rates["none"]), statistics.median(rates["everything"])
    print(f"registrations ({attempts}-attempt bursts, {rounds} rounds alternated ABBA):"
          f" no endpoint {none:.0f}/s {_each(rates['none'])}, one endpoint subscribed to"
          f" everything {every:.0f}/s {_each(rates['everything'])};"
          f" ratio {every / none:.2f} (guard ≥ 0.90)", flush=True)


def _each(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in values) + ")"


async def run(args: argparse.Namespace, daemon: DaemonProcess, db: str, workdir: Path) -> None:
    await throughput(daemon, db, args.messages)
    for gap_seconds in (0.2, 0.02):
        await lag(daemon, args.changes, gap_seconds)
    await registrations(daemon, db, args.attempts, args.rounds, workdir)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--attempts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with postgres_admin() as admin, tempfile.TemporaryDirectory() as tmp, \
            scratch_database(admin) as db:
        daemon = DaemonProcess(db, Path(tmp), email={"transport": "none"}, **SECTIONS).start()
        try:
            trio.run(run, args, daemon, db, Path(tmp))
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
