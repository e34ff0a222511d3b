"""The measurements of the benchmark suite (issue #7); ``bench/__main__.py`` runs them.

Each function starts the real daemon on a scratch database, drives it with wrk
from a separate process (bench.wrk_load) and returns :class:`Row`s for the
table. Throughput figures are ratios to the read ceiling, measured against
the same daemon in slices that alternate with the registrations', in several
rounds (the median reported, and every round's), so the noise of a shared
machine mostly cancels.
The latency at a given rate is an open-loop run instead (bench.open_loop):
closed-loop latency is only connections ÷ throughput.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx

from bench.burst import burst
from bench.harness import (
    cpu_seconds,
    create_event,
    daemon_on_scratch_database,
    health,
    insert_attendees,
    median_of,
    rss_kib,
    running_daemon,
    timed_start,
    wait_for_mailer,
)
from bench.open_loop import (
    DEFAULT_CONNECTIONS,
    DRAIN_SECONDS,
    SOCKET_ERROR,
    WARMUP_SECONDS,
    RateResult,
    run_open_loop,
)
from bench.wrk_load import LoadResult, Request, run_wrk, write_requests
from bench.ws_subscribers import open_subscribers
from eventd.actors.supervisor import IDLE_RETIRE_SECONDS
from tests.support import DaemonProcess, run_sql, scratch_database

T = TypeVar("T")

THROUGHPUT = ("read", "spread", "hot", "burst")
SCENARIOS = (*THROUGHPUT, "hot-rate", "memory", "startup")

SPREAD_EVENTS = 100
SPREAD_CONNECTIONS = 64
HOT_CONNECTIONS = 200
# The registration shapes the side benchmarks take (bench.ab, .instructions, .tasks):
# (events, connections).
SHAPES = {"spread": (SPREAD_EVENTS, SPREAD_CONNECTIONS), "hot": (1, HOT_CONNECTIONS)}
# Cold reads wait for a pooled database connection each: more connections
# than this only queue (and time out) without hydrating any faster.
HYDRATION_CONNECTIONS = 16
BIG_CAPACITY = 1_000_000  # the largest maxAttendees: no registration run ever fills it
HOT_RATE_TARGET_MS = 50.0  # issue #7: p99 of a registration at ≥ 1,000 hot registrations/s
HOT_RATE_TARGET_RATE = 1000.0  # below it, a --rate run has no target to pass
NEVER = 2**62  # a seq no event reaches: subscribers stay idle until told to go


@dataclasses.dataclass(frozen=True)
class Settings:
    seconds: float  # of reads, and of registrations, in each round
    rounds: int  # of reads and registrations, for each registration shape
    slices: int  # alternating read and registration runs a round's seconds are cut into
    actors: int  # events hydrated for the memory figure
    websockets: int  # idle subscribers for the memory figure
    registrations: int  # in the database for the start-up figure
    burst_attempts: int = 5000
    burst_capacity: int = 1000
    email_transport: str = "none"
    rate: float = 1000.0  # offered registrations per second of the hot-rate scenario


FULL = Settings(seconds=10, rounds=3, slices=5, actors=100_000, websockets=1000,
                registrations=1_000_000)
QUICK = Settings(seconds=3, rounds=1, slices=1, actors=10_000, websockets=300,
                 registrations=200_000)


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table: a figure, what it measured, its target and whether it is met."""

    section: str
    figure: str
    measured: str
    target: str = ""
    met: bool | None = None  # None: no target

    @property
    def mark(self) -> str:
        return {True: "pass", False: "MISS", None: ""}[self.met]


def progress(text: str) -> None:
    print(f"… {text}", file=sys.stderr, flush=True)


def _ms(value: float) -> str:
    if math.isinf(value):  # an open-loop rank that fell on a request never answered
        return "no answer"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def _kib(value: float) -> str:
    return f"{value:.2f} KiB" if value < 10 else f"{value:.1f} KiB"


def _answers(result: LoadResult, expected: int, *, to_the_end: bool = False) -> str:
    """Status counts: the expected one first, then any other, then socket errors.

    A list that ran out cut the measurement short, unless it was meant to be
    sent ``to_the_end``.
    """
    parts = [f"{expected}: {result.count(expected):,}"]
    parts += [f"{s}: {n:,}" for s, n in sorted(result.statuses.items()) if s != expected]
    if result.socket_errors:
        parts.append(f"socket errors: {result.socket_errors:,}")
    if result.exhausted_threads and not to_the_end:
        parts.append(f"list ran out after {result.seconds:.1f} s")
    return ", ".join(parts)


def _load_row(section: str, figure: str, result: LoadResult, expected: int) -> Row:
    return Row(
        section,
        figure,
        f"{result.rate:,.0f} req/s, p50 {_ms(result.p50_ms)}, p99 {_ms(result.p99_ms)}"
        f" ({_answers(result, expected)})",
    )


# --- throughput: read, spread, hot, burst --------------------------------------------


def throughput(
    admin: str, workdir: Path, workers: int, settings: Settings, wanted: set[str]
) -> tuple[list[Row], dict[str, float]]:
    """Rows for one ``server.workers`` value, and the raw rates (for 1-vs-N rows)."""
    section = f"workers = {workers}"
    with scratch_database(admin) as db:
        daemon = DaemonProcess(db, workdir, **_daemon_sections(workers, settings))
        refused = _refused(daemon, section)
        if refused:
            return [refused], {}
        try:
            return _throughput(daemon, db, workdir, workers, settings, wanted)
        finally:
            daemon.stop()


def _daemon_sections(workers: int, settings: Settings) -> dict[str, dict[str, Any]]:
    return {"server": {"workers": workers}, "email": {"transport": settings.email_transport}}


def _refused(daemon: DaemonProcess, section: str) -> Row | None:
    """Start ``daemon``; a row saying why it did not start, or None once it is up."""
    try:
        daemon.start()
    except RuntimeError as exc:  # e.g. a server.workers value this version refuses
        reason = next((line for line in reversed(str(exc).splitlines()) if line.strip()), "")
        return Row(section, "daemon", f"did not start: {reason.strip()[:160]}")
    return None


@dataclasses.dataclass(frozen=True)
class _Run:
    """One wrk run in a round (or a round's slices of one kind), with what the daemon spent."""

    result: LoadResult
    cpu: tuple[float, float]  # (µs of daemon CPU per request, share of a core busy)
    commits: int | None = None  # the writer's transactions meanwhile (one worker's only)
    outbox: dict[str, int] | None = None  # emails unsent and queued as registrations end

    @classmethod
    def pooled(cls, runs: Sequence[_Run]) -> _Run:
        """A round's slices of one kind as one run: their requests, time and CPU added up."""
        result = LoadResult.pooled([run.result for run in runs])
        requests = max(1, result.requests)
        seconds = max(1e-9, result.seconds)
        cpu = (sum(run.cpu[0] * run.result.requests for run in runs) / requests,
               sum(run.cpu[1] * run.result.seconds for run in runs) / seconds)
        commits = [run.commits for run in runs]
        total = sum(c for c in commits if c is not None) if None not in commits else None
        return cls(result, cpu, total, runs[-1].outbox)


_Round = tuple[_Run, _Run]  # a shape's read ceiling and its registrations, sliced alike


def _slicing(settings: Settings) -> tuple[int, int]:
    """(slices per round, whole seconds each): wrk measures whole seconds."""
    slices = max(1, min(settings.slices, int(settings.seconds)))
    return slices, max(1, round(settings.seconds / slices))


def slices_text(settings: Settings) -> str:
    slices, seconds = _slicing(settings)
    return "one run each" if slices == 1 else f"{slices} alternating slices of {seconds} s each"


def _throughput(
    daemon: DaemonProcess,
    db: str,
    workdir: Path,
    workers: int,
    settings: Settings,
    wanted: set[str],
) -> tuple[list[Row], dict[str, float]]:
    """Read, spread and hot in ``settings.rounds`` rounds of alternating slices.

    A shared machine's speed drifts by a tenth and more over seconds (a
    loop of pure Python here ran 60 % slower for a second now and then), so
    a ratio of two runs even ten seconds apart measures the drift as much as
    the daemon. A round measures a shape's read ceiling and its registrations
    in ``settings.slices`` pairs of short runs, one after the other
    (:func:`read_and_registration_pairs`), each kind's slices added up; each
    ratio is one round's, and the table gives the median and every round's.
    """
    section = f"workers = {workers}"
    rows: list[Row] = []
    rates: dict[str, float] = {}
    if "read" not in wanted:  # spread and hot imply read
        if "burst" in wanted:
            rows.append(_burst(daemon, db, workdir, section, settings))
        return rows, rates
    slices, seconds = _slicing(settings)
    rounds: dict[str, list[_Round]] = {}
    for shape in ("spread", "hot"):
        if shape in wanted:
            pairs = read_and_registration_pairs(daemon, db, shape, settings.rounds * slices,
                                                seconds, _timed_run(daemon, db, shape, settings))
            rounds[shape] = [
                (_Run.pooled([read for read, _ in pairs[n:n + slices]]),
                 _Run.pooled([registered for _, registered in pairs[n:n + slices]]))
                for n in range(0, len(pairs), slices)
            ]
    reads = {SHAPES[shape][1]: [read.result for read, _ in measured]
             for shape, measured in rounds.items()}
    if not reads:  # the read ceiling alone
        reads[SPREAD_CONNECTIONS] = _reads_alone(daemon, settings)
    for connections, results in reads.items():
        rows.append(_rounds_row(
            section, f"read `GET /events/{{id}}`, {connections} conn", results, 200))
    rates["read"] = statistics.median(r.rate for r in next(iter(reads.values())))
    for shape, measured in rounds.items():
        rows += _registration_rows(section, shape, measured)
        rates[shape] = statistics.median(registered.result.rate for _, registered in measured)
    if "hot" in rates:
        rows.append(Row(section, "hot registrations per second", f"{rates['hot']:,.0f}/s",
                        "≥ 1,000/s", rates["hot"] >= 1000))
    if "burst" in wanted:
        rows.append(_burst(daemon, db, workdir, section, settings))
    return rows, rates


def _timed_run(
    daemon: DaemonProcess, db: str, shape: str, settings: Settings
) -> Callable[[Path, Literal["cycle", "once"]], _Run]:
    """The suite's ``timed`` for :func:`read_and_registration_pairs`: one wrk run of ``shape``.

    A registration run also counts the writer's transactions (one worker's:
    /metrics answers for whichever worker takes it) and the unsent emails.
    """
    connections = SHAPES[shape][1]
    section = f"workers = {daemon.workers}"
    slices, seconds = _slicing(settings)
    runs = 0

    def timed(requests: Path, mode: Literal["cycle", "once"]) -> _Run:
        nonlocal runs
        pair, runs = runs // 2, runs + 1
        progress(f"{section}, round {pair // slices + 1} of {settings.rounds},"
                 f" slice {pair % slices + 1} of {slices}:"
                 f" {'read' if mode == 'cycle' else shape}, {connections} connections, {seconds} s")
        commits_before = writer_transactions(daemon.url) if mode == "once" else None
        with DaemonCpu(daemon) as cpu:
            result = run_wrk(daemon.url, requests, connections=connections,
                             seconds=seconds, mode=mode)
        if mode == "cycle":
            return _Run(result, cpu.per_request(result))
        commits_after = writer_transactions(daemon.url)
        commits = None
        if commits_before is not None and commits_after is not None and daemon.workers == 1:
            commits = max(1, commits_after - commits_before)
        outbox = run_sql(
            db,
            "SELECT count(*) FILTER (WHERE sent_at IS NULL) AS unsent, count(*) FROM email_outbox",
        )[0]
        return _Run(result, cpu.per_request(result), commits, dict(outbox))

    return timed


def _reads_alone(daemon: DaemonProcess, settings: Settings) -> list[LoadResult]:
    """``settings.rounds`` reads of one event at the spread shape's connections."""
    event = create_event(daemon.url, BIG_CAPACITY)["id"]
    read_file = daemon.workdir / "read.txt"
    write_requests(read_file, [("GET", f"/events/{event}", "")])
    run_wrk(daemon.url, read_file, connections=SPREAD_CONNECTIONS, seconds=1)  # warm-up
    progress(f"read, {SPREAD_CONNECTIONS} connections, {settings.rounds} × {settings.seconds:g} s")
    return [run_wrk(daemon.url, read_file, connections=SPREAD_CONNECTIONS,
                    seconds=settings.seconds) for _ in range(settings.rounds)]


def _each(values: Sequence[float], fmt: str) -> str:
    """Every round's value, in the order measured: " (rounds 0.79, 0.81, 0.84)"; none for one."""
    return f" (rounds {', '.join(format(v, fmt) for v in values)})" if len(values) > 1 else ""


def _rounds_row(section: str, figure: str, results: Sequence[LoadResult], expected: int) -> Row:
    """The median round's figures, and every round's rate."""
    row = _load_row(section, figure, median_of(results, lambda r: r.rate), expected)
    each = " / ".join(f"{r.rate:,.0f}" for r in results)
    more = f"; rounds {each} req/s" if len(results) > 1 else ""
    return dataclasses.replace(row, measured=row.measured + more)


def _registration_rows(section: str, name: str, rounds: Sequence[_Round]) -> list[Row]:
    events, connections = SHAPES[name]
    results = [registered.result for _, registered in rounds]
    created = sum(r.count(201) for r in results)
    rows = [_rounds_row(section, f"{name} `POST /registrations`, {events} event(s),"
                                 f" {connections} conn", results, 201)]
    commits = [registered.commits for _, registered in rounds]
    if all(c is not None for c in commits):
        total = sum(c for c in commits if c is not None)
        rows.append(Row(section, f"{name}: registrations per COMMIT (group commit)",
                        f"{created / max(1, total):.1f} ({total:,} transactions)"))
    outbox = rounds[-1][1].outbox
    if outbox is not None:
        rows.append(Row(section, f"{name}: emails unsent as a run ends (the mailer's backlog)",
                        f"{outbox['unsent']:,} of {outbox['count']:,} queued so far"))
    ratios = [registered.result.rate / read.result.rate for read, registered in rounds]
    ratio = statistics.median(ratios)
    rows.append(Row(section, f"{name} / read (same connections, in alternating slices)",
                    f"{ratio:.2f}{_each(ratios, '.2f')}", "≥ 0.80", ratio >= 0.8))
    # Every connection is kept busy, so the latency is mostly the queue: about
    # connections / rate (Little's law). The p99 target is judged at a fixed
    # rate of 1,000/s instead (hot-rate, open loop).
    median = median_of(results, lambda r: r.rate)
    rows.append(Row(section, f"{name} p99 (closed loop: queueing)", _ms(median.p99_ms)))
    answered = sum(r.requests for r in results)
    if created < 0.99 * answered:
        rows.append(Row(section, f"{name}: share of 201", f"{created / max(1, answered):.1%}",
                        "≥ 99% (else the run measured refusals)", False))
    cpu_ratios = [read.cpu[0] / registered.cpu[0] for read, registered in rounds]
    used, busy = (statistics.median(registered.cpu[i] for _, registered in rounds) for i in (0, 1))
    read_used, read_busy = (statistics.median(read.cpu[i] for read, _ in rounds) for i in (0, 1))
    rows.append(Row(
        section,
        f"{name}: daemon CPU per request, read / {name} (same connections)",
        f"{statistics.median(cpu_ratios):.2f}{_each(cpu_ratios, '.2f')}: {used:,.0f} µs"
        f" ({busy:.0%} of a core) vs read {read_used:,.0f} µs ({read_busy:.0%}), medians",
    ))
    return rows


def registration_requests(
    events: Sequence[str], attendees: Sequence[uuid.UUID]
) -> Iterator[Request]:
    """One ``POST /registrations`` per attendee, the events taken in turn: unique pairs."""
    for n, attendee in enumerate(attendees):
        body = {"eventId": events[n % len(events)], "attendeeId": str(attendee)}
        yield "POST", "/registrations", json.dumps(body)


def read_and_registration_pairs(
    daemon: DaemonProcess,
    db: str,
    shape: str,
    pairs: int,
    seconds: float,
    timed: Callable[[Path, Literal["cycle", "once"]], T],
) -> list[tuple[T, T]]:
    """``pairs`` times: ``timed`` reads of one event, then ``timed`` unique registrations.

    For the suite's rounds and the side benchmarks: ``timed(requests, mode)`` runs wrk on the
    request list (one GET over and over, or each registration once) at the
    shape's connections, measuring whatever it measures. Each read waits for
    the mailer to send the last registrations' emails first.
    """
    events_wanted, connections = SHAPES[shape]
    workdir = daemon.workdir
    events = [create_event(daemon.url, BIG_CAPACITY)["id"] for _ in range(events_wanted)]
    read_file = workdir / "read.txt"
    write_requests(read_file, [("GET", f"/events/{events[0]}", "")])
    run_wrk(daemon.url, read_file, connections=connections, seconds=1)  # warm-up
    # Enough unique pairs for the fastest this machine has read (~3,500/s).
    attendees = insert_attendees(db, int(5000 * seconds * pairs))
    per_pair = len(attendees) // pairs
    done = []
    for n in range(pairs):
        wait_for_mailer(db)  # the last pair's emails are sent, not paid for by this read
        read = timed(read_file, "cycle")
        pairs_file = workdir / f"pairs-{n}.txt"
        write_requests(pairs_file, registration_requests(
            events, attendees[n * per_pair:(n + 1) * per_pair]))
        done.append((read, timed(pairs_file, "once")))
    return done


class DaemonCpu:
    """The daemon's CPU time (all its workers) over a block, per answered request.

    A throughput ratio moves with whatever else the shared machine does during
    each of its two runs; CPU time per request hardly does. While the daemon
    keeps a core busy, throughput is the inverse of it, so the CPU ratio says
    what the req/s ratio would be on a quiet machine, and the share of a core
    says whether the daemon, not the database, set the pace.
    """

    def __init__(self, daemon: DaemonProcess) -> None:
        assert daemon.process is not None
        self._pid = daemon.process.pid
        self._cpu = self._wall = 0.0

    def __enter__(self) -> DaemonCpu:
        self._cpu, self._wall = cpu_seconds(self._pid), time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cpu = cpu_seconds(self._pid) - self._cpu
        self._wall = time.perf_counter() - self._wall

    def per_request(self, result: LoadResult) -> tuple[float, float]:
        """(µs of daemon CPU per answered request, cores kept busy)."""
        return 1e6 * self._cpu / max(1, result.requests), self._cpu / max(1e-9, self._wall)


def writer_transactions(url: str) -> int | None:
    """Transactions the writer has committed, from /metrics (one worker's); None if not there."""
    with contextlib.suppress(httpx.HTTPError):
        response = httpx.get(f"{url}/metrics", timeout=30)
        for line in response.text.splitlines() if response.status_code == 200 else []:
            if line.startswith("eventd_writer_batch_size_count"):
                return int(float(line.split()[-1]))
    return None


def _burst(daemon: DaemonProcess, db: str, workdir: Path, section: str, settings: Settings) -> Row:
    attempts, capacity = settings.burst_attempts, settings.burst_capacity
    progress(f"{section}: burst, {attempts:,} attempts at capacity {capacity:,}")
    wait_for_mailer(db)
    r = burst([daemon.url], db, attempts, capacity, 200, workdir)
    exact = r["201"] == capacity and r["confirmed_in_db"] == capacity == r["confirmed_rows"]
    return Row(
        section,
        f"burst: {attempts:,} attempts at capacity {capacity:,} (200 conn)",
        f"{r['201']:,} × 201, {r['409']:,} × 409, {r['other']:,} other; in DB"
        f" {r['confirmed_in_db']:,} (rows {r['confirmed_rows']:,}); wall {r['wall_s']:.2f} s,"
        f" {r['attempts_per_s']:,.0f} attempts/s, p99 {_ms(r['p99_ms'])}",
        f"exactly {capacity:,} confirmed",
        bool(exact),
    )


def workers_comparison(rates: dict[int, dict[str, float]]) -> list[Row]:
    """``N workers / first workers`` for each throughput figure measured under both."""
    if len(rates) < 2:
        return []
    base_workers, *others = rates
    rows = []
    for workers in others:
        for name, rate in rates[workers].items():
            base = rates[base_workers].get(name)
            if base:
                rows.append(
                    Row(
                        f"{workers} vs {base_workers} workers",
                        f"{name} req/s, {workers} / {base_workers} workers",
                        f"{rate / base:.2f}",
                    )
                )
    return rows


# --- latency at a rate: hot-rate -------------------------------------------------------


def hot_rate(admin: str, workdir: Path, workers: int, settings: Settings) -> list[Row]:
    """The p99 of a hot-event registration at ``settings.rate`` offered, open loop.

    A daemon of its own, so no mailer backlog from the closed-loop runs adds
    load that this rate did not make. First the same timetable of
    ``GET /events/{id}`` (the cheapest route: what the generator, the HTTP
    server and the machine cost at this rate), then registrations of unique
    attendees for one event of ample capacity — every answer should be 201.
    """
    section, rate = f"workers = {workers}", settings.rate
    with scratch_database(admin) as db:
        daemon = DaemonProcess(db, workdir, **_daemon_sections(workers, settings))
        refused = _refused(daemon, section)
        if refused:
            return [refused]
        try:
            read, hot = _hot_rate_runs(daemon, db, workdir, section, settings)
        except (RuntimeError, httpx.HTTPError) as exc:  # e.g. the daemon exited under load
            assert daemon.process is not None
            exited = daemon.process.poll() is not None
            return [Row(section, "hot-rate", f"{'the daemon exited; ' if exited else ''}{exc}")]
        finally:
            daemon.stop()
    offered = f"at {rate:,g}/s offered"
    # Answers counted in a window of a few seconds are off by latency × rate at
    # its edges: only a clear shortfall says the daemon fell behind the timetable.
    fell_behind = hot.rate < 0.9 * rate
    valid = hot.count(201) >= 0.99 * hot.requests  # a share of 201 below this measured refusals
    return [
        Row(
            section,
            f"read `GET /events/{{id}}` {offered}, {DEFAULT_CONNECTIONS} conn (open loop)",
            _rate_figures(read, 200),
        ),
        Row(
            section,
            f"hot `POST /registrations` {offered}, 1 event, {DEFAULT_CONNECTIONS} conn (open loop)",
            _rate_figures(hot, 201),
        ),
        Row(
            section,
            f"hot {offered}: p99",
            _ms(hot.p99_ms)
            + (f" (the daemon answered only {hot.rate:,.0f}/s)" if fell_behind else "")
            + ("" if valid else f" (only {hot.count(201) / max(1, hot.requests):.1%} 201)"),
            f"≤ {HOT_RATE_TARGET_MS:g} ms"
            + ("" if rate >= HOT_RATE_TARGET_RATE else f" at ≥ {HOT_RATE_TARGET_RATE:,g}/s"),
            hot.p99_ms <= HOT_RATE_TARGET_MS and valid if rate >= HOT_RATE_TARGET_RATE else None,
        ),
    ]


def _rate_figures(result: RateResult, expected: int) -> str:
    """Achieved rate, latency from due time, answers, and the generator's own state."""
    parts = [f"{expected}: {result.count(expected):,}"]
    parts += [
        f"{'socket errors' if s == SOCKET_ERROR else s}: {n:,}"
        for s, n in sorted(result.statuses.items())
        if s != expected
    ]
    if result.unanswered:
        parts.append(f"no answer in {DRAIN_SECONDS:g} s: {result.unanswered:,}")
    return (
        f"{result.rate:,.0f} answers/s, p50 {_ms(result.p50_ms)}, p90 {_ms(result.p90_ms)},"
        f" p99 {_ms(result.p99_ms)}, max {_ms(result.max_ms)} ({', '.join(parts)});"
        f" generator {result.generator_cpu:.0%} of a core, hands out p99"
        f" {_ms(result.dispatch_late_p99_ms)} late"
    )


def _hot_rate_runs(
    daemon: DaemonProcess, db: str, workdir: Path, section: str, settings: Settings
) -> tuple[RateResult, RateResult]:
    """The read timetable, then the registration one, on one new event of ample capacity."""
    url, rate, seconds = daemon.url, settings.rate, settings.seconds
    event = create_event(url, BIG_CAPACITY, name="Hot at a rate")["id"]
    attendees = insert_attendees(db, math.ceil(rate * (WARMUP_SECONDS + seconds)) + 1)
    progress(f"{section}: hot-rate, read at {rate:,g}/s offered, {seconds:g} s")
    read = run_open_loop(
        url, [("GET", f"/events/{event}", "")], rate=rate, seconds=seconds, workdir=workdir
    )
    progress(f"{section}: hot-rate, registrations at {rate:,g}/s offered, {seconds:g} s")
    hot = run_open_loop(
        url,
        [
            ("POST", "/registrations", json.dumps({"eventId": event, "attendeeId": str(attendee)}))
            for attendee in attendees
        ],
        rate=rate,
        seconds=seconds,
        workdir=workdir,
    )
    return read, hot


# --- memory ---------------------------------------------------------------------------


def memory(admin: str, workdir: Path, settings: Settings) -> list[Row]:
    """RSS per live event actor (events hydrated by one GET each) and per idle websocket.

    One worker: an actor's cost is a process's, and /health counts one process's actors.
    """
    section = "memory"
    with daemon_on_scratch_database(admin, workdir) as (daemon, db):
        assert daemon.process is not None
        pid, url = daemon.process.pid, daemon.url
        progress(f"memory: inserting {settings.actors:,} events")
        ids = run_sql(
            db,
            "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
            " max_attendees)"
            " SELECT gen_random_uuid(), 'Hydrate ' || n, at, 60, at + interval '1 hour',"
            " 'Hall ' || n, 100"
            " FROM generate_series(1, $1::int) n,"
            " LATERAL (SELECT timestamptz '2099-01-01' + n * interval '1 minute' AS at) t"
            " RETURNING id",
            settings.actors,
        )
        gets = workdir / "hydrate.txt"
        write_requests(gets, (("GET", f"/events/{row['id']}", "") for row in ids))
        time.sleep(0.5)
        live_before, rss_before = _live_actors(url), rss_kib(pid)
        progress(f"memory: hydrating {settings.actors:,} events (one GET each)")
        hydration_started = time.monotonic()
        hydration = run_wrk(
            url, gets, connections=HYDRATION_CONNECTIONS, seconds=600, mode="once", finish_all=True
        )
        time.sleep(1.0)
        live_after, rss_after = _live_actors(url), rss_kib(pid)
        hydration_seconds = time.monotonic() - hydration_started
        hydrated = live_after - live_before
        per_actor = (rss_after - rss_before) / max(1, hydrated)
        caveat = ""
        if hydration_seconds > 0.9 * IDLE_RETIRE_SECONDS:
            caveat = (
                f"; hydrating took {hydration_seconds:.0f} s, near the"
                f" {IDLE_RETIRE_SECONDS:.0f} s idle retirement: unreliable"
            )
        rows = [
            Row(
                section,
                f"RSS per live event actor ({hydrated:,} hydrated)",
                _kib(per_actor) + caveat,
                "≤ 6 KiB",
                per_actor <= 6,
            ),
            Row(
                section,
                "hydration: first GET of an event (a query each)",
                f"{hydration.rate:,.0f} req/s, p99 {_ms(hydration.p99_ms)}"
                f" ({_answers(hydration, 200, to_the_end=True)})",
            ),
        ]

        event = create_event(url, BIG_CAPACITY, name="Subscribed")
        time.sleep(0.5)
        rss_before = rss_kib(pid)
        progress(f"memory: {settings.websockets:,} idle websockets")
        with open_subscribers(
            url, event["id"], settings.websockets, NEVER, workdir / "subscribers.json"
        ) as subscribers:
            time.sleep(1.0)
            rss_idle = rss_kib(pid)
            subscribers.terminate()
        per_socket = (rss_idle - rss_before) / settings.websockets
        rows.append(
            Row(
                section,
                f"RSS per idle websocket ({settings.websockets:,} open)",
                _kib(per_socket),
                "< 30 KiB (issue #3)",
                per_socket < 30,
            )
        )
    return rows


def _live_actors(url: str) -> int:
    live: int = health(url)["checks"]["actors"]["live"]
    return live


# --- start-up -------------------------------------------------------------------------


def startup(admin: str, workdir: Path, workers: int, settings: Settings) -> list[Row]:
    """Spawn to /health 200 on an empty database, then with the registrations in it."""
    section = "start-up"
    sections: dict[str, dict[str, Any]] = {"server": {"workers": workers}}
    with scratch_database(admin) as db:
        with running_daemon(db, workdir, **sections):
            pass  # migrated: both timed starts below find the schema in place
        empty = _timed(DaemonProcess(db, workdir, **sections))
        events = 1000
        per_event = max(1, settings.registrations // events)
        progress(f"start-up: inserting {events * per_event:,} registrations")
        _insert_registrations(db, events, per_event)
        full = _timed(DaemonProcess(db, workdir, **sections))
    return [
        Row(section, "spawn → /health 200, empty database", f"{empty:.2f} s"),
        Row(
            section,
            f"spawn → /health 200, {events * per_event:,} registrations ({events:,} events)",
            f"{full:.2f} s",
            "≤ 2 s",
            full <= 2,
        ),
    ]


def _timed(daemon: DaemonProcess) -> float:
    try:
        return timed_start(daemon)
    finally:
        daemon.stop()


def _insert_registrations(db: str, events: int, per_event: int) -> None:
    """``events`` events with ``per_event`` confirmed registrations each, counts consistent."""
    run_sql(
        db,
        "INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
        " max_attendees, confirmed_count, registration_seq, version)"
        " SELECT gen_random_uuid(), 'Startup ' || n, at, 120, at + interval '2 hours',"
        " 'Hall ' || n, 2 * $2::int, $2::int, $2::int, 1 + $2::int"
        " FROM generate_series(1, $1::int) n,"
        " LATERAL (SELECT timestamptz '2099-01-01' + n * interval '1 day' AS at) t",
        events,
        per_event,
    )
    run_sql(
        db,
        "INSERT INTO attendees (id, name, email)"
        " SELECT gen_random_uuid(), 'Attendee ' || n, 'attendee' || n || '@bench.org'"
        " FROM generate_series(1, $1::int) n",
        per_event,
    )
    run_sql(
        db,
        "INSERT INTO registrations (id, event_id, attendee_id, status, seq, confirmed_at)"
        " SELECT gen_random_uuid(), e.id, a.id, 'confirmed', a.n, now()"
        " FROM events e CROSS JOIN"
        " (SELECT id, row_number() OVER (ORDER BY id) AS n FROM attendees) a",
    )
    run_sql(db, "VACUUM ANALYZE")  # as a database in service would be
