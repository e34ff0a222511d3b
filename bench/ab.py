"""This tree against another commit, interleaved: registration / read ratios of one daemon.

    python -m bench.ab --baseline REV [--rounds 3] [--seconds 5] [--only spread,hot]

One run of the suite cannot tell a few hundredths of spread / read from the
noise of a shared machine: the same code's ratio moves that much between
runs. This alternates the two trees — a daemon of REV (checked out in a git
worktree), then one of this tree, each on a scratch database — round after
round, and in each daemon alternates the read ceiling with the registration
shape, twice. A slow minute of the machine then lands on both trees alike.

Shapes as in the suite: spread (100 events, 64 connections) and hot (one
event, 200), each against the read of one event at the same connections.
Printed per run: req/s ratio, daemon CPU ratio, the daemon's µs of CPU per
read and per registration, and the req/s of each; then the medians. On a
shared machine the req/s move with whatever else runs; the µs of CPU hardly
do, and while the daemon keeps a core busy they are its throughput's inverse.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

from bench.harness import checkout, postgres_admin
from bench.suite import SHAPES, DaemonCpu, read_and_registration_pairs
from bench.wrk_load import LoadResult, run_wrk
from tests.support import DaemonProcess, scratch_database

PAIRS_PER_RUN = 2  # read, then registrations, twice, in each daemon


@dataclasses.dataclass(frozen=True)
class Run:
    """One daemon's figures for one shape: medians over its pairs of measurements."""

    rate_ratio: float
    cpu_ratio: float
    read_us: float
    registration_us: float
    read_rate: float
    registration_rate: float


def measure(admin: str, source: Path | None, shape: str, seconds: float) -> Run:
    """A daemon of ``source`` (None: this tree) on a fresh database, read and ``shape`` in turn."""
    _, connections = SHAPES[shape]
    with tempfile.TemporaryDirectory() as tmp, scratch_database(admin) as db:
        daemon = DaemonProcess(db, Path(tmp), email={"transport": "none"})
        daemon.source = source
        daemon.start()
        try:
            pairs = read_and_registration_pairs(
                daemon, db, shape, PAIRS_PER_RUN, seconds,
                lambda requests, mode: _timed(daemon, requests, connections, seconds, mode))
        finally:
            daemon.stop()
    return Run(
        rate_ratio=statistics.median(reg[0].rate / read[0].rate for read, reg in pairs),
        cpu_ratio=statistics.median(read[1] / reg[1] for read, reg in pairs),
        read_us=statistics.median(read[1] for read, _ in pairs),
        registration_us=statistics.median(reg[1] for _, reg in pairs),
        read_rate=statistics.median(read[0].rate for read, _ in pairs),
        registration_rate=statistics.median(reg[0].rate for _, reg in pairs),
    )


def _timed(
    daemon: DaemonProcess, requests: Path, connections: int, seconds: float,
    mode: Literal["cycle", "once"],
) -> tuple[LoadResult, float]:
    """wrk's result and the daemon's µs of CPU per answered request."""
    with DaemonCpu(daemon) as cpu:
        result = run_wrk(daemon.url, requests, connections=connections, seconds=seconds,
                         mode=mode)
    return result, cpu.per_request(result)[0]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--only", default="spread,hot", help="shapes: spread, hot")
    args = parser.parse_args()
    shapes = [s for s in args.only.split(",") if s]
    unknown = set(shapes) - set(SHAPES)
    if unknown:
        parser.error(f"unknown shape(s): {', '.join(sorted(unknown))}")
    here = f"this tree ({_describe()})"
    runs: dict[tuple[str, str], list[Run]] = {}
    with postgres_admin() as admin, checkout(args.baseline) as tree:
        for round_number in range(1, args.rounds + 1):
            for shape in shapes:
                for label, source in ((args.baseline, tree), (here, None)):
                    run = measure(admin, source, shape, args.seconds)
                    runs.setdefault((shape, label), []).append(run)
                    print(f"round {round_number} {shape:6s} {label:28s} {shape} / read"
                          f" {run.rate_ratio:.2f} req/s, {run.cpu_ratio:.2f} CPU;"
                          f" µs of CPU per read {run.read_us:.0f}, per registration"
                          f" {run.registration_us:.0f}; req/s read {run.read_rate:,.0f},"
                          f" registration {run.registration_rate:,.0f}", flush=True)
    print()
    for shape in shapes:
        for label in (args.baseline, here):
            done = runs[(shape, label)]
            print(f"{shape:6s} {label:28s} median of {len(done)}: {shape} / read"
                  f" {statistics.median(r.rate_ratio for r in done):.2f} req/s,"
                  f" {statistics.median(r.cpu_ratio for r in done):.2f} CPU;"
                  f" µs per read {statistics.median(r.read_us for r in done):.0f},"
                  f" per registration {statistics.median(r.registration_us for r in done):.0f};"
                  f" req/s read {statistics.median(r.read_rate for r in done):,.0f},"
                  f" registration {statistics.median(r.registration_rate for r in done):,.0f}")


def _describe() -> str:
    done = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parent)
    return done.stdout.strip() or "?"


if __name__ == "__main__":
    main()
