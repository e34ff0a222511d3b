"""The benchmark suite of issue #7: the real daemon, real PostgreSQL, load from wrk.

    python -m bench [--quick] [--only NAME[,NAME]] [--workers 1,2] [--duration SECONDS]
                    [--rounds N] [--rate PER_SECOND]

Scenarios (bench.suite), each on a scratch database created and dropped here:

- read     ``GET /events/{id}`` of one live event: the ceiling every ratio is taken to;
- spread   ``POST /registrations`` over 100 events, unique (event, attendee) pairs,
           64 connections: req/s, p50/p99 and spread / read;
- hot      the same on one event, 200 connections: hot / read, hot req/s;
- burst    5,000 attempts at an event of capacity 1,000: exactly 1,000 confirmed, wall time;
- hot-rate registrations for one event offered at a fixed rate (``--rate``, default
           1,000/s), open loop from bench.open_loop: p50/p90/p99/max from each
           request's due time (the latency at that load, which closed-loop
           figures cannot give), after the same timetable of reads;
- memory   RSS per live event actor (100,000 hydrated) and per idle websocket;
- startup  spawn to /health 200 with 1,000,000 registrations in the database.

``--workers 1,2`` runs the throughput and hot-rate scenarios once per value (it sets
``server.workers``) and adds N-vs-1 rows; start-up uses the first value,
memory one worker. Spread and hot run in ``--rounds`` rounds (default 3); a
round is ``--duration`` seconds of reads and as many of registrations, cut into
2-second slices that alternate (five pairs), each kind's slices added up: a
ratio is one round's, and the table gives the median and every round's (this
machine's speed drifts by a tenth and more within seconds). ``--quick`` is a
smoke run of a minute or two with smaller sizes, one round and no slicing. The
PostgreSQL is ``$BENCH_DATABASE_URL`` or 127.0.0.1:5432 (see bench.harness).
Prints the machine, then one Markdown table: each figure, its target, pass/MISS.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import suite
from bench.harness import machine, postgres_admin
from bench.wrk_load import WrkMissing, wrk_path, wrk_version


def _names(text: str) -> set[str]:
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = names - set(suite.SCENARIOS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(sorted(unknown))};"
            f" choose from {', '.join(suite.SCENARIOS)}"
        )
    return names


def _workers(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of numbers, e.g. 1,2") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("each value must be ≥ 1")
    return values


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a number of requests per second, e.g. 1000") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, smaller sizes")
    parser.add_argument(
        "--only",
        type=_names,
        default=set(suite.SCENARIOS),
        metavar="NAME[,NAME]",
        help=f"any of {', '.join(suite.SCENARIOS)}",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=[1],
        metavar="N[,N]",
        help="server.workers values to compare, e.g. 1,2",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="seconds of reads, and of registrations, per round; the hot-rate run's length"
        " (default 10, quick 3)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="rounds of reads and registrations per shape; ratios are each round's,"
        f" the median reported (default {suite.FULL.rounds}, quick {suite.QUICK.rounds})",
    )
    parser.add_argument(
        "--rate",
        type=_rate,
        default=suite.FULL.rate,
        metavar="PER_SECOND",
        help=f"registrations offered per second in hot-rate (default {suite.FULL.rate:,g})",
    )
    parser.add_argument(
        "--email",
        choices=("none", "file"),
        default="none",
        help="email.transport of the throughput daemon (default none: the"
        " outbox row is still written and the mailer still composes)",
    )
    return parser.parse_args(argv)


def markdown_table(rows: list[suite.Row]) -> str:
    lines = ["| | figure | measured | target | |", "|---|---|---|---|---|"]
    previous = None
    for row in rows:
        section = row.section if row.section != previous else ""
        previous = row.section
        lines.append(f"| {section} | {row.figure} | {row.measured} | {row.target} | {row.mark} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        wrk_path()
    except WrkMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    settings = suite.QUICK if args.quick else suite.FULL
    settings = dataclasses.replace(settings, email_transport=args.email, rate=args.rate)
    if args.duration:
        settings = dataclasses.replace(settings, seconds=args.duration)
    if args.rounds:
        settings = dataclasses.replace(settings, rounds=args.rounds)
    wanted: set[str] = args.only
    if wanted & {"spread", "hot"}:
        wanted = wanted | {"read"}  # their ratios are to the read ceiling of the same run

    started = time.perf_counter()
    rows: list[suite.Row] = []
    rates: dict[int, dict[str, float]] = {}
    with postgres_admin() as admin, tempfile.TemporaryDirectory(prefix="eventd-bench-") as tmp:
        workdir = Path(tmp)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        print(f"eventd benchmark suite — {stamp}")
        for line in machine(admin):
            print(line)
        print(
            f"load generator: {wrk_version()} (bench/wrk/replay.lua); hot-rate:"
            " bench.open_loop (Python, trio); both in their own process, same machine"
        )
        print(
            f"settings: {'quick' if args.quick else 'full'}, {settings.rounds} round(s) of"
            f" {settings.seconds:g} s of reads and of registrations"
            f" ({suite.slices_text(settings)}),"
            f" workers {','.join(map(str, args.workers))},"
            f" email.transport {settings.email_transport}, hot-rate {settings.rate:,g}/s;"
            " scenarios:"
            f" {', '.join(s for s in suite.SCENARIOS if s in wanted)}",
            flush=True,
        )
        for workers in args.workers:
            if wanted & set(suite.THROUGHPUT):
                measured, rates[workers] = suite.throughput(
                    admin, workdir, workers, settings, wanted
                )
                rows += measured
            if "hot-rate" in wanted:
                rows += suite.hot_rate(admin, workdir, workers, settings)
        rows += suite.workers_comparison(rates)
        if "memory" in wanted:
            rows += suite.memory(admin, workdir, settings)
        if "startup" in wanted:
            rows += suite.startup(admin, workdir, args.workers[0], settings)
    print()
    print(markdown_table(rows), flush=True)
    print()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at end: {load}; suite took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
