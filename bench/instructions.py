"""Instructions per request under callgrind: read against registrations, counted, not timed.

    python -m bench.instructions [--baseline REV] [--shape spread|hot] [--seconds 20]

On a shared machine a daemon's CPU time per request moves by several percent
between runs, so a change worth two percent is invisible to the suite and
needs many rounds of ``bench.ab``. valgrind's callgrind counts the
instructions the daemon executes instead, which hardly depend on what else
the machine does: the same tree under the same load counts the same to
within a few percent (batches and collections fall a little differently from
run to run: repeat a run before trusting a difference of two), where CPU
time moves by five to ten. The daemon runs under callgrind (some 40 times
slower), driven by wrk as in the suite; counting starts after a warm-up, and
each measurement is dumped on its own. Printed, per tree: thousands of
instructions per read (``GET /events/{id}``) and per registration, and read
/ registration — the instruction-count stand-in for spread / read.

What it cannot see: the time instructions take (cache misses), the
database's work (another process), idle time. Under callgrind's slowdown
the group commit's batches form a little differently, so per-batch costs
weigh a little differently too.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness import checkout, create_event, insert_attendees, postgres_admin
from bench.suite import BIG_CAPACITY, SHAPES, registration_requests
from bench.wrk_load import run_wrk, write_requests
from tests.support import DaemonProcess, scratch_database

WARM_UP_REGISTRATIONS = 300
REGISTRATIONS_PER_SECOND = 150  # more than callgrind's daemon answers (~90/s)
SLOW_SECONDS = 120  # request deadline and wrk's timeout: every request is slow here


def measure(admin: str, source: Path | None, shape: str, seconds: float) -> tuple[float, float]:
    """(instructions per read, per registration) of a daemon of ``source`` (None: this tree)."""
    events_wanted, connections = SHAPES[shape]
    with tempfile.TemporaryDirectory() as tmp, scratch_database(admin) as db:
        workdir = Path(tmp)
        daemon = DaemonProcess(db, workdir, email={"transport": "none"},
                               server={"request_timeout_seconds": SLOW_SECONDS})
        daemon.source = source
        daemon.command_prefix = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                 f"--callgrind-out-file={workdir}/callgrind.%p"]
        daemon.start(timeout=600)
        assert daemon.process is not None
        pid = daemon.process.pid
        try:
            url = daemon.url
            events = [create_event(url, BIG_CAPACITY)["id"] for _ in range(events_wanted)]
            attendees = insert_attendees(
                db, WARM_UP_REGISTRATIONS + int(REGISTRATIONS_PER_SECOND * seconds))
            read_file, warm_file, pairs_file = (workdir / f"{name}.txt"
                                                for name in ("read", "warm", "pairs"))
            write_requests(read_file, [("GET", f"/events/{events[0]}", "")])
            write_requests(warm_file, registration_requests(
                events, attendees[:WARM_UP_REGISTRATIONS]))
            write_requests(pairs_file, registration_requests(
                events, attendees[WARM_UP_REGISTRATIONS:]))
            run_wrk(url, read_file, connections=connections, seconds=5,
                    timeout_seconds=SLOW_SECONDS)
            run_wrk(url, warm_file, connections=connections, seconds=30, mode="once",
                    finish_all=True, timeout_seconds=SLOW_SECONDS)
            _callgrind("--instr=on", pid)
            read = run_wrk(url, read_file, connections=connections, seconds=seconds,
                           timeout_seconds=SLOW_SECONDS)
            read_count = _dump(workdir, pid, "read")
            registered = run_wrk(url, pairs_file, connections=connections, seconds=seconds,
                                 mode="once", timeout_seconds=SLOW_SECONDS)
            registration_count = _dump(workdir, pid, "registrations")
        finally:
            daemon.stop(timeout=SLOW_SECONDS)
    return read_count / max(1, read.requests), registration_count / max(1, registered.requests)


def _callgrind(*args: str | int) -> None:
    subprocess.run(["callgrind_control", *map(str, args)], check=True, capture_output=True)


def _dump(workdir: Path, pid: int, name: str) -> int:
    """Dump what was counted since the last dump, under ``name``; its instruction count."""
    _callgrind(f"--dump={name}", pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for path in workdir.glob(f"callgrind.{pid}.*"):
            text = path.read_text(errors="replace")
            if f"Trigger: dump {name}\n" in text and (found := re.search(
                    r"^summary: (\d+)$", text, re.MULTILINE)):
                return int(found.group(1))
        time.sleep(0.2)
    raise RuntimeError(f"callgrind wrote no dump {name!r} in {workdir}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", help="a commit to count too, before this tree")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="spread")
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    args = parser.parse_args()
    missing = [tool for tool in ("valgrind", "callgrind_control") if not shutil.which(tool)]
    if missing:
        raise SystemExit(f"{' and '.join(missing)} not found: install Debian's valgrind")
    with postgres_admin() as admin:
        trees: list[tuple[str, Path | None]] = [("this tree", None)]
        with checkout(args.baseline) if args.baseline else contextlib.nullcontext() as baseline:
            if baseline is not None:
                trees.insert(0, (args.baseline, baseline))
            for label, source in trees:
                read, registration = measure(admin, source, args.shape, args.seconds)
                print(f"{label:12s} {args.shape}: {read / 1e3:,.0f} k instructions per read,"
                      f" {registration / 1e3:,.0f} k per registration;"
                      f" read / registration {read / registration:.3f}", flush=True)


if __name__ == "__main__":
    main()
