"""wrk as the load generator: write a request list, run wrk on it, read its result.

wrk (Debian package ``wrk``) is a C load generator: from a separate process it
drives thousands of requests a second on one core, so on a small machine the
daemon, not the client, is what gets measured. ``bench/wrk/replay.lua`` walks a
list of requests written by :func:`write_requests` and reports every answer's
status, so a run that is mostly 409s cannot pass for a fast one.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from bench.harness import median_of

REPLAY_SCRIPT = Path(__file__).parent / "wrk" / "replay.lua"
RESULT_PREFIX = "BENCH_RESULT "
EXHAUSTED_LINE = "BENCH_EXHAUSTED"
WRK_MISSING = (
    "wrk is not installed: the benchmark suite drives the daemon with it.\n"
    "Install it with `apt-get install -y wrk` (Debian/Ubuntu), or build it from "
    "https://github.com/wg/wrk and put it on PATH."
)


class WrkMissing(RuntimeError):
    pass


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(WRK_MISSING)
    return path


def wrk_version() -> str:
    done = subprocess.run([wrk_path(), "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).split("Copyright")[0].strip()


@dataclasses.dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    errors: dict[str, int]
    exhausted_threads: int  # threads that ran out of unique requests before the end

    @property
    def rate(self) -> float:
        """Answered requests per second."""
        return self.requests / self.seconds

    @classmethod
    def pooled(cls, results: Sequence[LoadResult]) -> LoadResult:
        """Several runs of one kind as one: requests, seconds and answers added up.

        The percentiles are the middle run's (by p99; wrk's histograms are not
        kept to merge), the maximum the largest.
        """
        middle = median_of(results, lambda r: r.p99_ms)
        statuses: collections.Counter[int] = collections.Counter()
        errors: collections.Counter[str] = collections.Counter()
        for result in results:
            statuses.update(result.statuses)
            errors.update(result.errors)
        return cls(
            requests=sum(r.requests for r in results),
            seconds=sum(r.seconds for r in results),
            p50_ms=middle.p50_ms,
            p90_ms=middle.p90_ms,
            p99_ms=middle.p99_ms,
            max_ms=max(r.max_ms for r in results),
            statuses=dict(statuses),
            errors=dict(errors),
            exhausted_threads=sum(r.exhausted_threads for r in results),
        )

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)

    def other_than(self, status: int) -> int:
        return sum(n for s, n in self.statuses.items() if s != status)

    @property
    def socket_errors(self) -> int:
        return sum(n for kind, n in self.errors.items() if kind != "status")


Request = tuple[str, str, str]  # method, path, JSON body ("" for none)


def write_requests(path: Path, requests: Iterable[Request]) -> int:
    """One request per line, as replay.lua reads them; returns how many."""
    count = 0
    with path.open("w") as out:
        for method, target, body in requests:
            assert "\t" not in target, target
            assert "\n" not in body, body
            out.write(f"{method}\t{target}\t{body}\n")
            count += 1
    return count


def run_wrk(
    url: str,
    requests_file: Path,
    *,
    connections: int,
    seconds: float,
    mode: Literal["cycle", "once"] = "cycle",
    finish_all: bool = False,
    threads: int | None = None,
    timeout_seconds: float = 10.0,
) -> LoadResult:
    """Run wrk against ``url`` with the requests in ``requests_file``.

    ``cycle`` repeats the list for ``seconds``. ``once`` sends each request
    once, each wrk thread its own slice; wrk would idle out the rest of its
    duration when slices run out, so the run is ended (SIGINT: wrk then
    reports as usual, over the time it really ran) as soon as one thread has
    run out — every thread stays busy to the end of the measurement — or,
    with ``finish_all``, once every request has been sent.
    """
    threads = threads or max(1, min(os.cpu_count() or 1, connections))
    command = [
        wrk_path(),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, math.ceil(seconds))}s",
        f"--timeout={max(1, math.ceil(timeout_seconds))}s",
        f"--script={REPLAY_SCRIPT}",
        url,
        "--",
        str(requests_file),
        mode,
        str(threads),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output, exhausted = [], 0
    for line in process.stdout:
        output.append(line)
        if line.startswith(EXHAUSTED_LINE):
            exhausted += 1
            if exhausted == (threads if finish_all else 1):
                process.send_signal(signal.SIGINT)
    stderr = process.stderr.read() if process.stderr else ""
    code = process.wait()
    results = [line for line in output if line.startswith(RESULT_PREFIX)]
    if code != 0 or not results:
        raise RuntimeError(f"wrk failed ({code}):\n{''.join(output)}\n{stderr}")
    raw = json.loads(results[-1].removeprefix(RESULT_PREFIX))
    return LoadResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        statuses={int(status): n for status, n in raw["statuses"].items()},
        errors=raw["errors"],
        exhausted_threads=raw["exhausted_threads"],
    )
