"""Open-loop load at a fixed rate: the latency a request sees at a given offered load.

Closed-loop load (wrk: each of C connections sends its next request when the
last is answered) measures throughput, but its latency is only C ÷ throughput
(Little's law): it says nothing about a request at a given rate. Here request
``i`` is due at ``start + i / rate`` whatever the server does, and its latency
runs from when it was *due*, not from when it went out: a request that waits
for a free connection (all busy) or for a late generator carries that wait
(no coordinated omission). A pool of keep-alive connections (bench.loadgen's
raw HTTP/1.1 :class:`~bench.loadgen.Connection`) takes due requests in turn,
one request at a time each.

The generator runs in a process of its own (:func:`run_open_loop` starts it):

    python -m bench.open_loop JOB.json RESULT.json

and reports its own CPU use and how late it handed requests out, so a
generator that cannot keep up shows as such rather than as a slow server.
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from bench.harness import percentile
from bench.loadgen import Connection

# Enough for the target: at 1,000/s and 50 ms each, 50 are in flight (Little's
# law). More only adds the daemon's per-connection cost (wrk, closed loop: about
# half the read rate at 128 connections of what it is at 16).
DEFAULT_CONNECTIONS = 64
WARMUP_SECONDS = 1.0  # sent on the same timetable first, left out of the figures
DRAIN_SECONDS = 10.0  # after the last due time, answers still awaited (the daemon's timeout)
START_MARGIN = 0.05  # from the clock's start to the first due time
SOCKET_ERROR = 0  # the status recorded for a request whose connection failed
# A connection idle this long is opened afresh before its next request: the
# server closes idle keep-alive connections (hypercorn: after 5 s), which only
# a low --rate over a large pool ever reaches.
IDLE_REOPEN_SECONDS = 2.0

Request = tuple[str, str, str]  # method, path, JSON body ("" for none)


# --- the generator process --------------------------------------------------------


@dataclasses.dataclass
class _Timetable:
    """What happened to each request, in seconds from the clock's start (None: did not)."""

    requests: list[tuple[str, str, bytes]]
    rate: float
    count: int
    dispatched: list[float | None] = dataclasses.field(init=False)
    answered: list[float | None] = dataclasses.field(init=False)
    statuses: list[int | None] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.dispatched = [None] * self.count
        self.answered = [None] * self.count
        self.statuses = [None] * self.count

    def due(self, index: int) -> float:
        return START_MARGIN + index / self.rate

    def request(self, index: int) -> tuple[str, str, bytes]:
        return self.requests[index % len(self.requests)]


async def _dispatch(
    timetable: _Timetable, start: float, queue: trio.MemorySendChannel[int]
) -> None:
    """Hand request ``i`` to the pool at its due time; never wait for an answer."""
    async with queue:
        for index in range(timetable.count):
            due = start + timetable.due(index)
            if due > trio.current_time():
                await trio.sleep_until(due)
            timetable.dispatched[index] = trio.current_time() - start
            queue.send_nowait(index)


async def _serve(
    url: str,
    connection: Connection,
    timetable: _Timetable,
    start: float,
    queue: trio.MemoryReceiveChannel[int],
) -> None:
    """One connection of the pool: the next due request as soon as the last is answered."""
    last_used = trio.current_time()
    async with queue:
        async for index in queue:
            try:
                if trio.current_time() - last_used > IDLE_REOPEN_SECONDS:
                    await connection.aclose()
                    connection = await Connection.open(url)
                status = await connection.request(*timetable.request(index))
            except (OSError, trio.BrokenResourceError):
                status = SOCKET_ERROR
            last_used = trio.current_time()
            timetable.answered[index] = last_used - start
            timetable.statuses[index] = status
            if status == SOCKET_ERROR:
                await connection.aclose()
                try:
                    connection = await Connection.open(url)
                except OSError:
                    return  # the rest of the pool carries on
    await connection.aclose()


async def offer(
    url: str, requests: Sequence[Request], rate: float, seconds: float, connections: int
) -> dict[str, Any]:
    """Send ``rate × seconds`` requests on the timetable (the list repeats if shorter)."""
    timetable = _Timetable(
        [(method, path, body.encode()) for method, path, body in requests],
        rate,
        math.ceil(rate * seconds),
    )
    pool = [await Connection.open(url) for _ in range(connections)]
    send, receive = trio.open_memory_channel[int](timetable.count)
    cpu_before = _cpu_seconds()
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.cancel_scope.deadline = start + timetable.due(timetable.count) + DRAIN_SECONDS
        async with receive:
            for connection in pool:
                nursery.start_soon(_serve, url, connection, timetable, start, receive.clone())
        nursery.start_soon(_dispatch, timetable, start, send)
    return {
        "rate": rate,
        "start_margin": START_MARGIN,
        "dispatched": timetable.dispatched,
        "answered": timetable.answered,
        "statuses": timetable.statuses,
        "cpu_seconds": _cpu_seconds() - cpu_before,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    requests = [(method, path, body) for method, path, body in job["requests"]]
    out = trio.run(offer, job["url"], requests, job["rate"], job["seconds"], job["connections"])
    Path(sys.argv[2]).write_text(json.dumps(out))


# --- the parent: start the process, read its figures -------------------------------


@dataclasses.dataclass(frozen=True)
class RateResult:
    """The measured part of an open-loop run (the warm-up left out)."""

    offered_rate: float
    seconds: float  # the measurement window: its first due time to its last
    requests: int  # due in the window
    answered_in_window: int  # answers (to any request) that arrived in the window
    statuses: dict[int, int]  # of the requests due in the window; SOCKET_ERROR for a failure
    unanswered: int  # no answer within DRAIN_SECONDS of the last due time
    p50_ms: float  # from due time to answer; inf where the rank falls on the unanswered
    p90_ms: float
    p99_ms: float
    max_ms: float
    dispatch_late_p99_ms: float  # how late the generator itself handed requests out
    dispatch_late_max_ms: float
    generator_cpu: float  # the generator's CPU per request × the rate: its share of a core

    @property
    def rate(self) -> float:
        """Answers per second during the window: the offered rate if the server keeps up."""
        return self.answered_in_window / self.seconds

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)


def run_open_loop(
    url: str,
    requests: Sequence[Request],
    *,
    rate: float,
    seconds: float,
    workdir: Path,
    connections: int = DEFAULT_CONNECTIONS,
    warmup_seconds: float = WARMUP_SECONDS,
) -> RateResult:
    """Offer ``requests`` at ``rate`` for ``warmup_seconds`` + ``seconds`` from a new process.

    ``requests`` repeat if fewer than the timetable holds; pass at least
    ``rate × (warmup_seconds + seconds)`` to make each one unique.
    """
    job, result = workdir / "open-loop-job.json", workdir / "open-loop-result.json"
    job.write_text(
        json.dumps(
            {
                "url": url,
                "rate": rate,
                "seconds": warmup_seconds + seconds,
                "connections": connections,
                "requests": list(requests),
            }
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench.open_loop", str(job), str(result)],
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "")
        raise RuntimeError(f"the open-loop generator failed ({done.returncode}): {last.strip()}")
    return summarize(json.loads(result.read_text()), warmup_seconds)


def summarize(raw: dict[str, Any], warmup_seconds: float) -> RateResult:
    """The figures of the requests due after the warm-up."""
    rate, margin = raw["rate"], raw["start_margin"]
    first = math.ceil(rate * warmup_seconds)
    count = len(raw["statuses"])
    window_start, window_end = margin + first / rate, margin + count / rate
    latencies: list[float] = []
    late: list[float] = []
    statuses: Counter[int] = Counter()
    unanswered = 0
    for index in range(first, count):
        due, answered = margin + index / rate, raw["answered"][index]
        if raw["dispatched"][index] is not None:
            late.append(raw["dispatched"][index] - due)
        if answered is None:
            unanswered += 1
            latencies.append(math.inf)
        else:
            latencies.append(answered - due)
        if raw["statuses"][index] is not None:
            statuses[raw["statuses"][index]] += 1
    latencies.sort()
    late.sort()
    in_window = sum(
        1 for at in raw["answered"] if at is not None and window_start <= at < window_end
    )
    return RateResult(
        offered_rate=rate,
        seconds=window_end - window_start,
        requests=count - first,
        answered_in_window=in_window,
        statuses=dict(statuses),
        unanswered=unanswered,
        p50_ms=1000 * percentile(latencies, 0.50),
        p90_ms=1000 * percentile(latencies, 0.90),
        p99_ms=1000 * percentile(latencies, 0.99),
        max_ms=1000 * latencies[-1] if latencies else math.nan,
        dispatch_late_p99_ms=1000 * percentile(late, 0.99),
        dispatch_late_max_ms=1000 * late[-1] if late else math.nan,
        generator_cpu=raw["cpu_seconds"] / count * rate,
    )


if __name__ == "__main__":
    main()
