"""Where the daemon's CPU goes, task by task: a read against a registration.

    python -m bench.tasks [--shape spread|hot] [--seconds 5] [--rounds 2]

The suite says how much more CPU a registration costs than a read; this says
where the difference is spent. The daemon runs under a trio instrument (the
daemon is started as ``python -m bench.tasks serve --config …``, which adds
the instrument and hands over to eventd's own command line) that times every
step of every task and adds it up by the task's name. A step is one
uninterrupted run of one task on the daemon's one thread, so the sums are the
daemon's CPU by task: the request's own task (hypercorn's ``_handle``: the
app, from the parsed request to the response written), the connection's
(``_run_handler``: reading and parsing requests), the writer, asyncpg's
asyncio loop (trio-asyncio's tasks), the mailer. What no step holds — trio's
scheduler itself, the kernel's share of polling and sockets — is the rest of
the process's CPU time, printed as such.

Driven as in the suite: one daemon on a scratch database, wrk with the same
connections, reads of one event, then unique registrations of the shape;
``--rounds`` pairs, each task's figure the median. The instrument's own cost
is a few hundred nanoseconds per step (some five steps a request), on both
sides alike. A step's wall time counts whatever preempts the daemon's
thread meanwhile, so on a busy machine every figure is a little high.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import trio

from bench.harness import postgres_admin
from bench.suite import SHAPES, DaemonCpu, read_and_registration_pairs
from bench.wrk_load import run_wrk
from tests.support import DaemonProcess, scratch_database

REPOSITORY = Path(__file__).resolve().parent.parent
# The daemon writes its sums here on SIGUSR2 (and starts them over on SIGUSR1).
FIGURES_FILE_VARIABLE = "BENCH_TASKS_FILE"
# Ids in task names (an actor's "event-actor <uuid>") would make one row per event.
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class StepTimes(trio.abc.Instrument):
    """Seconds and steps by task name."""

    def __init__(self) -> None:
        self.seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.steps: collections.defaultdict[str, int] = collections.defaultdict(int)
        self._started: float = 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        name = _ID.sub("ID", task.name)
        self.seconds[name] += time.perf_counter() - self._started
        self.steps[name] += 1

    def start_over(self) -> None:
        self.seconds.clear()
        self.steps.clear()

    def write(self, path: Path) -> None:
        """Whole or not at all: the reader waits for ``path`` to appear."""
        written = path.with_suffix(".partial")
        written.write_text(json.dumps({"seconds": self.seconds, "steps": self.steps}))
        written.replace(path)


def serve_timed(argv: list[str]) -> int:
    """eventd's command line, every trio.run of it under a StepTimes."""
    from eventd import cli

    times = StepTimes()
    path = Path(os.environ[FIGURES_FILE_VARIABLE])
    signal.signal(signal.SIGUSR1, lambda *_: times.start_over())
    signal.signal(signal.SIGUSR2, lambda *_: times.write(path))
    untimed_run = trio.run

    def run(*args: Any, **kwargs: Any) -> Any:
        kwargs["instruments"] = [*kwargs.get("instruments", ()), times]
        return untimed_run(*args, **kwargs)

    trio.run = run  # type: ignore[assignment]  # cli looks trio.run up when it calls it
    return cli.main(argv)


Figures = dict[str, Any]


def measure(admin: str, shape: str, seconds: float, rounds: int) -> list[tuple[Figures, Figures]]:
    """(read figures, registration figures) per round, each with the requests and process CPU."""
    _, connections = SHAPES[shape]
    with tempfile.TemporaryDirectory() as tmp, scratch_database(admin) as db:
        workdir = Path(tmp)
        figures_file = workdir / "tasks.json"
        os.environ[FIGURES_FILE_VARIABLE] = str(figures_file)
        daemon = DaemonProcess(db, workdir, email={"transport": "none"})
        daemon.source = REPOSITORY  # bench.tasks importable in the daemon
        daemon.module = "bench.tasks"
        daemon.start()
        assert daemon.process is not None
        pid = daemon.process.pid

        def timed(requests: Path, mode: Literal["cycle", "once"]) -> Figures:
            os.kill(pid, signal.SIGUSR1)
            with DaemonCpu(daemon) as cpu:
                result = run_wrk(daemon.url, requests, connections=connections,
                                 seconds=seconds, mode=mode)
            figures_file.unlink(missing_ok=True)
            os.kill(pid, signal.SIGUSR2)
            deadline = time.monotonic() + 10
            while not figures_file.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the daemon wrote no figures:\n{daemon.log()[-2000:]}")
                time.sleep(0.05)
            figures: Figures = json.loads(figures_file.read_text())
            figures["requests"] = max(1, result.requests)
            figures["cpu_us"] = cpu.per_request(result)[0]
            return figures

        try:
            return read_and_registration_pairs(daemon, db, shape, rounds, seconds, timed)
        finally:
            daemon.stop()


def report(shape: str, pairs: list[tuple[Figures, Figures]]) -> None:
    def median(side: int, value: Callable[[Figures], float]) -> float:
        return statistics.median(value(pair[side]) for pair in pairs)

    def of_task(key: str, name: str, scale: float) -> Callable[[Figures], float]:
        return lambda figures: scale * float(figures[key].get(name, 0)) / figures["requests"]

    def in_steps(figures: Figures) -> float:
        return 1e6 * float(sum(figures["seconds"].values())) / int(figures["requests"])

    def cpu(figures: Figures) -> float:
        return float(figures["cpu_us"])

    def row(label: str, value: Callable[[Figures], float], steps: str = "") -> None:
        read_us, registration_us = median(0, value), median(1, value)
        if max(read_us, registration_us) >= 0.5:
            print(f"{label[:56]:56s} {read_us:14.1f} {registration_us:14.1f}"
                  f" {registration_us - read_us:+10.1f} {steps}")

    names = sorted({name for pair in pairs for side in pair for name in side["seconds"]},
                   key=lambda name: -median(1, of_task("seconds", name, 1e6)))
    print(f"{shape}: µs of daemon CPU per request (steps per request), median of {len(pairs)}")
    print(f"{'':56s} {'read':>14s} {'registration':>14s} {'difference':>10s}")
    for name in names:
        steps = of_task("steps", name, 1)
        row(name, of_task("seconds", name, 1e6),
            f"({median(0, steps):.2f} / {median(1, steps):.2f} steps)")
    row("all task steps", in_steps)
    row("the rest: trio's scheduler, the kernel", lambda f: cpu(f) - in_steps(f))
    row("the daemon process (CPU time / answered requests)", cpu)
    print(f"read / registration, daemon CPU: {median(0, cpu) / median(1, cpu):.2f}")


def main() -> None:
    if sys.argv[1:2] == ["serve"]:  # the daemon, started by measure()
        sys.exit(serve_timed(sys.argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m bench.tasks",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="spread")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="read/registration pairs")
    args = parser.parse_args()
    with postgres_admin() as admin:
        report(args.shape, measure(admin, args.shape, args.seconds, args.rounds))


if __name__ == "__main__":
    main()
