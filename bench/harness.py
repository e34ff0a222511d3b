"""What every benchmark shares: a PostgreSQL, a scratch database, the daemon, its memory.

The daemon is the real one — ``python -m eventd serve`` as a subprocess with a
config of its own (``tests.support.DaemonProcess``) — on a database created
for the run and dropped after it, on loopback only. The PostgreSQL is
``$BENCH_DATABASE_URL``, else the one the tests use (``$TEST_DATABASE_URL`` or
127.0.0.1:5432, else an embedded one).
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.support import DaemonProcess, postgres_server, run_sql, scratch_database

T = TypeVar("T")

BENCH_DATABASE_ENV = "BENCH_DATABASE_URL"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
FAR_FUTURE = "2099-01-01T10:00:00Z"  # events that never start during a run


@contextlib.contextmanager
def postgres_admin() -> Iterator[str]:
    """An admin URL of the PostgreSQL to benchmark against (loopback only)."""
    url = os.environ.get(BENCH_DATABASE_ENV)
    if url:
        host = urllib.parse.urlsplit(url).hostname
        if host not in LOOPBACK_HOSTS:
            raise SystemExit(f"${BENCH_DATABASE_ENV} must point at loopback, not {host}")
        yield url
        return
    with postgres_server() as admin:
        yield admin


@contextlib.contextmanager
def running_daemon(db: str, workdir: Path, **sections: dict[str, Any]) -> Iterator[DaemonProcess]:
    """One daemon on ``db``, stopped (SIGTERM) at the end of the block."""
    daemon = DaemonProcess(db, workdir, **sections).start()
    try:
        yield daemon
    finally:
        daemon.stop()


@contextlib.contextmanager
def daemon_on_scratch_database(
    admin: str, workdir: Path, **sections: dict[str, Any]
) -> Iterator[tuple[DaemonProcess, str]]:
    """A fresh database and one daemon on it: (daemon, database URL); both gone afterwards."""
    with scratch_database(admin) as db, running_daemon(db, workdir, **sections) as daemon:
        yield daemon, db


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """``rev`` of this repository checked out in a temporary git worktree, removed afterwards."""
    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev],
                       cwd=here, check=True, capture_output=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)],
                           cwd=here, check=False, capture_output=True)


def timed_start(daemon: DaemonProcess) -> float:
    """Start ``daemon``; seconds from process spawn to /health 200 (polled every 50 ms)."""
    started = time.perf_counter()
    daemon.start(timeout=120)
    return time.perf_counter() - started


def create_event(url: str, capacity: int, name: str = "Bench") -> dict[str, Any]:
    """An event through the API (so its actor is live), far in the future."""
    response = httpx.post(
        f"{url}/events",
        timeout=30,
        json={
            "name": name,
            "date": FAR_FUTURE,
            "location": f"Bench {uuid.uuid4().hex[:10]}",
            "maxAttendees": capacity,
        },
    )
    response.raise_for_status()
    event: dict[str, Any] = response.json()
    return event


def insert_attendees(db: str, count: int) -> list[uuid.UUID]:
    """``count`` attendees straight into the table: setup, not the thing measured."""
    ids = [uuid.uuid4() for _ in range(count)]
    run_sql(
        db,
        "INSERT INTO attendees (id, name, email) SELECT id, 'Bench', id || '@bench.org'"
        " FROM unnest($1::uuid[]) id",
        ids,
    )
    return ids


def wait_for_mailer(db: str, timeout: float = 120.0) -> None:
    """Until the outbox holds no unsent email: the daemon's mailer has caught up.

    After a run of registrations the mailer sends its backlog (thousands of
    emails, a few seconds of the daemon's CPU): a read measured meanwhile
    would pay for it and flatter every registration / read ratio after it.
    """
    deadline = time.monotonic() + timeout
    while run_sql(db, "SELECT 1 FROM email_outbox WHERE sent_at IS NULL LIMIT 1"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the mailer did not catch up within {timeout:.0f} s")
        time.sleep(0.2)


def health(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/health", timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


# --- memory ----------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and every process under it (a daemon's workers), in KiB."""
    total = 0
    for member in _process_tree(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and every live process under it."""
    ticks = 0
    for member in _process_tree(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            # The parent pid is the 2nd field after the parenthesised command name.
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue.extend(children.get(pid, []))
    return tree


# --- figures -----------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of the (sorted) values lie."""
    if not sorted_values:
        return float("nan")
    return sorted_values[
        max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    ]


def median_of(items: Sequence[T], key: Callable[[T], float]) -> T:
    """The item in the middle by ``key`` (of an even count, the lower of the two)."""
    return sorted(items, key=key)[(len(items) - 1) // 2]


def machine(admin: str) -> list[str]:
    """What the figures were measured on, one fact per line."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    postgres = run_sql(admin, "SELECT version()")[0][0].split(" on ")[0]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: {os.cpu_count()} cores ({cpu}, {platform.machine()}), {memory_gib:.0f} GiB,"
        f" {platform.system()} {platform.release()}",
        f"python: {platform.python_implementation()} {platform.python_version()}",
        f"postgres: {postgres} at {_redacted_host(admin)}",
        f"load average at start: {load}",
    ]


def _redacted_host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}"
