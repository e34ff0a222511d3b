"""Test support: a PostgreSQL to test against, the real daemon as a process, a
stand-in for the database and the writer for the actors' tests, and eventd's
serve loop in this process with raw HTTP and WebSocket clients.

Rules for every test here: loopback only, ports picked free, each test makes
its own events at its own location (the daemon is shared within a session),
and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import h11
import httpx
import hypercorn.config
import outcome
import pytest
import trio
import trio_websocket
import wsproto
from hypercorn.utils import wrap_app
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage

from eventd.actors import messages as m
from eventd.actors.event_actor import Peers
from eventd.actors.supervisor import Supervisor
from eventd.config import Config
from eventd.errors import NotFound
from eventd.http.rate_limits import ConnectionLimiter
from eventd.http.server import hypercorn_config, serve
from eventd.model import Event, EventCounts, Registration, utc_now
from eventd.realtime.changes import Change
from eventd.realtime.outbox import Closing, Outbox
from eventd.storage import commands as c
from eventd.storage import tickets as t
from eventd.storage.writer import WriteCommand

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_URL_ENV = "TEST_DATABASE_URL"  # an admin URL of another server, if wanted


def run_sql(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement synchronously (from a thread, inside trio tests)."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def _reachable(url: str) -> bool:
    try:
        run_sql(url, "SELECT 1")
        return True
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """An admin URL: $TEST_DATABASE_URL, the local server, or an embedded one."""
    url = os.environ.get(ADMIN_URL_ENV) or LOCAL_POSTGRES
    if _reachable(url):
        yield url
        return
    print(f"\n{url} is not reachable; starting the embedded PostgreSQL (pgserver)",
          file=sys.stderr)
    import pgserver

    with tempfile.TemporaryDirectory(prefix="eventd-pg-") as data_dir:
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
        try:
            yield server.get_uri("postgres")
        finally:
            server.cleanup()


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A fresh database with a unique name, dropped afterwards."""
    name = f"eventd_test_{uuid.uuid4().hex[:12]}"
    run_sql(admin_url, f"CREATE DATABASE {name}")
    try:
        yield _with_database(admin_url, name)
    finally:
        run_sql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DaemonProcess:
    """``python -m eventd serve`` with a config of its own, on a free port."""

    def __init__(self, database_url: str, workdir: Path, **sections: dict[str, Any]) -> None:
        self.source: Path | None = None  # a checkout whose eventd to run, not the installed one
        self.command_prefix: list[str] = []  # runs the daemon under this (valgrind, say)
        self.module = "eventd"  # python -m this serve --config …: a wrapper of eventd's CLI
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.config_path = workdir / f"eventd-{self.port}.toml"
        self.log_path = workdir / f"eventd-{self.port}.log"
        config: dict[str, dict[str, Any]] = {
            "server": {"bind": f"127.0.0.1:{self.port}", "request_timeout_seconds": 10},
            "database": {"url": database_url, "pool_size": 10},
            "log": {"level": "info"},
        }
        for section, values in sections.items():
            config.setdefault(section, {}).update(values)
        self.config_path.write_text(_toml(config))
        self.workers: int = config["server"].get("workers", 1)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> DaemonProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTD_")}
        if self.source is not None:
            env["PYTHONPATH"] = str(self.source)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        logged_before = self._log.tell()  # a restart appends to the same log
        self.process = subprocess.Popen(
            [*self.command_prefix, sys.executable, "-m", self.module, "serve",
             "--config", str(self.config_path)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"eventd exited at start:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                # Healthy, and every worker serving: the first one answers before the rest.
                if (httpx.get(f"{self.url}/health", timeout=1).status_code == 200
                        and self.log_path.read_bytes()[logged_before:].count(
                            b"eventd: listening on ") >= self.workers):
                    return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"eventd did not become healthy in {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code

    def kill(self) -> None:
        """kill -9: no shutdown, no flush."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _toml(config: dict[str, dict[str, Any]]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v)

    return "\n".join(
        f"[{section}]\n" + "\n".join(f"{k} = {value(v)}" for k, v in values.items()) + "\n"
        for section, values in config.items()
    )


# --- a private PostgreSQL, for fault injection ----------------------------------


def _postgres_bin_dir() -> Path:
    """A directory holding initdb and pg_ctl: the system's, else pgserver's own build."""
    candidates: list[Path] = []
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             check=True, timeout=10)
        candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if found := shutil.which("pg_ctl"):
        candidates.append(Path(found).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    import pgserver  # ships PostgreSQL binaries in its wheel

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


class PrivatePostgres:
    """A PostgreSQL cluster of a test's own, on a free port: it may be stopped at will.

    initdb refuses to run as root, so under root the server runs as the
    ``postgres`` system user (or pgserver's ``pgserver`` user, made on demand).
    """

    def __init__(self, base_dir: Path) -> None:
        self.bin_dir = _postgres_bin_dir()
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir
        self.log_path = base_dir / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = self._system_user()
            import pwd

            entry = pwd.getpwnam(self._user)
            os.chown(base_dir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync")

    def _system_user(self) -> str:
        import pwd

        with contextlib.suppress(KeyError):
            pwd.getpwnam("postgres")
            return "postgres"
        from pgserver.utils import (  # the same preparation pgserver makes as root
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists("pgserver")
        ensure_prefix_permissions(self.bin_dir)
        ensure_folder_permissions(self.bin_dir.parent, 0o555)
        return "pgserver"

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([str(self.bin_dir / tool), *args], capture_output=True,
                                text=True, timeout=120, user=self._user, cwd=self.socket_dir)
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            raise RuntimeError(f"{tool} failed ({result.returncode}):\n{result.stderr}\n{log}")

    def start(self) -> PrivatePostgres:
        options = f"-k {self.socket_dir} -p {self.port} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "start", "-D", str(self.data_dir), "-w", "-t", "60",
                  "-l", str(self.log_path), "-o", options)
        return self

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE``; ``immediate`` is a crash: no checkpoint, clients cut."""
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-w", "-t", "60", "-m", mode)

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def freeze(self) -> None:
        """SIGSTOP the server and its backends: a database that hangs, not one that is gone."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in reversed(self._processes()):
            os.kill(pid, signal.SIGCONT)

    def _processes(self) -> list[int]:
        """The postmaster first (so it forks no more), then its children."""
        postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                # pid (comm) state ppid ...; comm may hold spaces and parentheses.
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(stat.parent.name))
        return [postmaster, *children]


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private cluster, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="eventd-private-pg-") as base:
        server = PrivatePostgres(Path(base)).start()
        try:
            yield server
        finally:
            if server.running():
                with contextlib.suppress(RuntimeError):
                    server.stop("immediate")


# --- a real browser ------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright downloads nothing


@contextlib.contextmanager
def headless_chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright's sync API.

    Open it after the daemon's fixtures: Playwright keeps an asyncio loop
    running, and the database fixtures use ``asyncio.run``. Importing eventd's
    database layer installs trio-asyncio's loop policy for the whole process;
    Playwright needs a plain asyncio loop, so the default policy is put back
    for the block.
    """
    import pytest
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium. Install it with"
            " `apt-get install -y chromium` (scripts/test does so when run as root)."
        )
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        asyncio.set_event_loop_policy(None)


REPOSITORY = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("EVENTD_TEST_ARTIFACTS") or REPOSITORY / "test-artifacts")
# axe-core from the npm registry, installed by scripts/test beside the virtualenv.
AXE_SCRIPT = REPOSITORY / ".venv" / "node" / "node_modules" / "axe-core" / "axe.min.js"


def screenshot(page: Any, name: str) -> Path:
    """The whole page as a PNG in ``$EVENTD_TEST_ARTIFACTS`` (default ``test-artifacts/``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    print(f"screenshot: {path}")
    return path


def serious_accessibility_violations(page: Any) -> list[str]:
    """What axe-core finds serious or critical on the page as it is now, one line each.

    The script goes in through the DevTools protocol (``page.evaluate``): the pages'
    Content-Security-Policy rightly refuses an inline ``<script>`` such as
    ``add_script_tag`` would write.
    """
    if not AXE_SCRIPT.exists():
        pytest.fail(
            f"{AXE_SCRIPT} is missing: the accessibility checks need axe-core. Install it with"
            " `npm install --prefix .venv/node axe-core@4` (scripts/test does so)."
        )
    page.evaluate("source => { (0, eval)(source); }", AXE_SCRIPT.read_text())
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map((n) => n.target.join(" ")),
            }));
        }"""
    )
    return [
        f"{v['impact']} {v['id']}: {v['help']} ({', '.join(v['nodes'][:5])})"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


# --- counting tasks ------------------------------------------------------------------


class TaskCounts(trio.abc.Instrument):
    """Of the tasks whose name passes ``named``: how many were spawned, how many steps they took."""

    def __init__(self, named: Callable[[str], bool]) -> None:
        self._named = named
        self.spawned = 0
        self.steps = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        if self._named(task.name):
            self.spawned += 1

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if self._named(task.name):
            self.steps += 1


@contextlib.contextmanager
def counting_tasks(named: Callable[[str], bool]) -> Iterator[TaskCounts]:
    """Count the spawns and steps of the tasks ``named`` picks out, for the block."""
    counts = TaskCounts(named)
    trio.lowlevel.add_instrument(counts)
    try:
        yield counts
    finally:
        trio.lowlevel.remove_instrument(counts)


# --- the actors' stand-in for PostgreSQL and the writer (no sockets, no database) ---
#
# The rules of the actors' tests (test_rounds, test_event_actor, test_supervisor,
# test_mailbox): no sockets and no database — FakeStore stands in for both
# ``load_event`` and the writer's ``offer``, and tests script it (a per-event gate
# that blocks the writer, a per-event error it raises once, events it answers
# "busy"). Time only moves through trio's MockClock (the ``autojump_clock``
# fixture); nothing sleeps for real. Every wait is bounded by ``trio.fail_after``.
# Scheduling points are made explicit with ``trio.testing.wait_all_tasks_blocked``
# so each assertion is deterministic.

# Virtual seconds under the autojump clock, real seconds otherwise: generous,
# because a hang, not slowness, is what they are there to catch.
TIMEOUT_SECONDS = 10


@dataclasses.dataclass
class _Row:
    event_id: uuid.UUID
    attendee_id: uuid.UUID
    status: str


class FakeStore:
    """Events and registrations in memory, with the writer's answers.

    ``submit`` answers a ``RegistrationOps`` the way ``eventd_registration_batch``
    does: confirm while confirmed < max, else waitlist (if asked) or
    event_full; one version per change; a cancellation frees a spot and
    promotes the head of the waitlist.
    """

    def __init__(self) -> None:
        self.events: dict[uuid.UUID, Event] = {}
        self.rows: dict[uuid.UUID, _Row] = {}
        self.waitlists: dict[uuid.UUID, list[uuid.UUID]] = {}
        self.loads: Counter[uuid.UUID] = Counter()
        self.commands: list[WriteCommand[Any]] = []
        # Scripting: submit waits on a gate of its event; raises a failure once.
        self.gates: dict[uuid.UUID, trio.Event] = {}
        self.failures: dict[uuid.UUID, BaseException] = {}
        self.edited_versions: dict[uuid.UUID, int] = {}  # the version of the last edit
        self.locked: set[uuid.UUID] = set()  # held by another transaction: answered "busy"
        # What an expire answers as the event's next pending expiry (none: None).
        self.next_expiries: dict[uuid.UUID, datetime | None] = {}
        self.checked_in: dict[uuid.UUID, datetime] = {}  # registration -> its first check-in
        self._inbox, self._offered = trio.open_memory_channel[WriteCommand[Any]](math.inf)

    def add_event(
        self,
        *,
        max_attendees: int = 10,
        confirmed: int = 0,
        starts_in: timedelta = timedelta(days=30),
        version: int = 1,
    ) -> Event:
        now = utc_now()
        event = Event(
            id=uuid.uuid4(),
            name="Launch",
            description="",
            starts_at=now + starts_in,
            duration_minutes=60,
            location=f"Room {uuid.uuid4().hex[:8]}",
            max_attendees=max_attendees,
            confirmed_count=confirmed,
            waitlist_count=0,
            version=version,
            created_at=now,
            updated_at=now,
        )
        self.events[event.id] = event
        self.waitlists[event.id] = []
        return event

    def gate(self, event_id: uuid.UUID) -> trio.Event:
        """Block the writer for this event until the returned event is set."""
        gate = self.gates[event_id] = trio.Event()
        return gate

    def submitted_turns(self, event_id: uuid.UUID) -> list[c.EventOps]:
        """The event's turns of registrations, as they reached the store."""
        return [
            part
            for cmd in self.commands
            if isinstance(cmd, c.RegistrationOps)
            for part in cmd.parts
            if part.event_id == event_id
        ]

    def submitted_ids(self, event_id: uuid.UUID) -> list[uuid.UUID]:
        return [op.registration_id for turn in self.submitted_turns(event_id) for op in turn.ops]

    # -- what the supervisor is given --

    async def load_event(self, event_id: uuid.UUID) -> Event | None:
        self.loads[event_id] += 1
        await trio.lowlevel.checkpoint()
        return self.events.get(event_id)

    def offer(self, command: WriteCommand[Any]) -> None:
        """Like the writer's: queued now, answered later in a task of the store's own."""
        self._inbox.send_nowait(command)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Answer offered commands, each in its own task (a gate holds back only its event)."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            async for command in self._offered:
                nursery.start_soon(self._answer, command)

    async def _answer(self, command: WriteCommand[Any]) -> None:
        command.reply.settle(await outcome.acapture(self.submit, command))

    async def submit(self, command: WriteCommand[Any]) -> Any:
        """The answer to ``command``, as scripted (gates, failures)."""
        if isinstance(command, c.RegistrationOps):
            parts = command.parts
            if not parts:
                return []  # every request was answered by its actor: nothing to write
            events = [part.event_id for part in parts]
        else:
            events = [command.event_id]  # type: ignore[attr-defined]
        self.commands.append(command)
        for event_id in events:
            gate = self.gates.get(event_id)
            if gate is not None:
                await gate.wait()
        await trio.lowlevel.checkpoint()
        for event_id in events:
            failure = self.failures.pop(event_id, None)
            if failure is not None:
                raise failure  # before any change, like a bug in the command
        if isinstance(command, c.RegistrationOps):
            return [
                [c.OpResult(op.registration_id or uuid.uuid4(), "busy", None, (), None)
                 for op in part.ops] if part.event_id in self.locked
                else [self._apply(part.event_id, op) for op in part.ops]
                for part in parts
            ]
        [event_id] = events
        if isinstance(command, c.UpdateEvent):
            event = self.events[event_id]
            event = dataclasses.replace(event, **command.changes, version=event.version + 1)
            self.events[event_id] = event
            self.edited_versions[event_id] = event.version
            return c.EventUpdated(event, event, ())
        if isinstance(command, c.DeleteEvent):
            event = self.events.pop(event_id, None)
            if event is None:
                raise NotFound(f"Event {event_id} does not exist.")
            return _event_deleted(event)
        if isinstance(command, t.CheckIns):
            return self._check_in(event_id, command.registration_ids)
        raise AssertionError(f"FakeStore cannot answer {command!r}")

    # -- check-in: eventd_check_in's rules --

    def _check_in(self, event_id: uuid.UUID, ids: list[uuid.UUID]) -> t.CheckedIn:
        now = utc_now()
        results = []
        for rid in ids:
            row = self.rows.get(rid)
            if row is None or row.event_id != event_id or row.status != "confirmed":
                results.append(t.CheckInResult(rid, "not_valid", None, None))
                continue
            verdict: t.CheckInOutcome = "already_checked_in" if rid in self.checked_in else (
                "checked_in")
            first = self.checked_in.setdefault(rid, now)
            registration = Registration(rid, event_id, row.attendee_id, "confirmed", None, now)
            results.append(t.CheckInResult(rid, verdict, registration, first))
        entered = sum(r.outcome == "checked_in" for r in results)
        event = self.events[event_id]
        if entered:
            event = dataclasses.replace(event, version=event.version + 1, updated_at=now,
                                        checked_in_count=event.checked_in_count + entered)
            self.events[event_id] = event
        return t.CheckedIn(results, self._counts(event), event.checked_in_count)

    # -- the registration rules --

    def _counts(self, event: Event) -> EventCounts:
        return EventCounts(
            event.id,
            event.max_attendees,
            event.confirmed_count,
            event.waitlist_count,
            event.version,
            event.updated_at,
            self.edited_versions.get(event.id, 0),
        )

    def edit_elsewhere(self, event_id: uuid.UUID, name: str) -> Event:
        """Another daemon renames the event: a new version, and its edited_version."""
        event = self.events[event_id]
        event = dataclasses.replace(event, name=name, version=event.version + 1)
        self.events[event_id] = event
        self.edited_versions[event_id] = event.version
        return event

    def _apply(self, event_id: uuid.UUID, op: c.RegistrationOp) -> c.OpResult:
        # Like the database: a registration given no id gets one.
        rid = op.registration_id or uuid.uuid4()
        result = functools.partial(c.OpResult, rid)
        event = self.events.get(event_id)
        if event is None:
            return result("event_not_found", None, (), None)
        now = utc_now()
        if op.kind == "expire":  # nothing held here: nothing is due
            return result("unchanged", None, (), self._counts(event), None, None,
                          self.next_expiries.get(event_id))
        if op.kind == "register":
            if event.starts_at <= now:
                return result("event_started", None, (), self._counts(event))
            if any(
                r.event_id == event_id and r.attendee_id == op.attendee_id
                for r in self.rows.values()
            ):
                return result("already_registered", None, (), self._counts(event))
            if event.confirmed_count < event.max_attendees:
                status, confirmed, waitlist = "confirmed", 1, 0
            elif op.waitlist:
                status, confirmed, waitlist = "waitlisted", 0, 1
                self.waitlists[event_id].append(rid)
            else:
                return result("event_full", None, (), self._counts(event))
            assert op.attendee_id is not None
            self.rows[rid] = _Row(event_id, op.attendee_id, status)
            event = self._change(event, confirmed, waitlist, now)
            return result(status, now, (), self._counts(event))  # type: ignore[arg-type]
        row = self.rows.get(rid)
        if row is None or row.event_id != event_id:
            return result("not_found", None, (), self._counts(event))
        del self.rows[rid]
        promoted: tuple[uuid.UUID, ...] = ()
        if row.status == "waitlisted":
            self.waitlists[event_id].remove(rid)
            event = self._change(event, 0, -1, now)
        elif self.waitlists[event_id]:
            head = self.waitlists[event_id].pop(0)
            self.rows[head].status = "confirmed"
            promoted = (head,)
            event = self._change(event, 0, -1, now)
        else:
            event = self._change(event, -1, 0, now)
        return result("cancelled", None, promoted, self._counts(event))

    def _change(self, event: Event, confirmed: int, waitlist: int, now: Any) -> Event:
        event = dataclasses.replace(
            event,
            confirmed_count=event.confirmed_count + confirmed,
            waitlist_count=event.waitlist_count + waitlist,
            version=event.version + 1,
            updated_at=now,
        )
        self.events[event.id] = event
        return event


def _event_deleted(event: Event) -> c.EventDeleted:
    # EventDeleted(event, event.version + 1, ...): any further fields are
    # collections of ids, empty here (the fake keeps no attendee list).
    extra = {
        f.name: () for f in dataclasses.fields(c.EventDeleted) if f.name not in ("event", "version")
    }
    return c.EventDeleted(event=event, version=event.version + 1, **extra)


@asynccontextmanager
async def running(
    store: FakeStore, changes: list[Change], **options: Any
) -> AsyncIterator[Supervisor]:
    supervisor = Supervisor(store.load_event, store.offer, changes.append, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await nursery.start(supervisor.run)
        yield supervisor
        nursery.cancel_scope.cancel()


async def register(
    supervisor: Supervisor,
    event_id: uuid.UUID,
    *,
    waitlist: bool = False,
    registration_id: uuid.UUID | None = None,
    attendee_id: uuid.UUID | None = None,
) -> Registration:
    rid = registration_id or uuid.uuid4()
    aid = attendee_id or uuid.uuid4()
    result: Registration = await supervisor.ask(
        event_id, lambda reply: m.Register(rid, aid, waitlist, reply)
    )
    return result


async def cancel(
    supervisor: Supervisor, event_id: uuid.UUID, registration_id: uuid.UUID
) -> tuple[uuid.UUID, ...]:
    promoted: tuple[uuid.UUID, ...] = await supervisor.ask(
        event_id, lambda reply: m.Cancel(registration_id, reply)
    )
    return promoted


async def delete(supervisor: Supervisor, event_id: uuid.UUID) -> None:
    await supervisor.ask(event_id, lambda reply: m.DeleteEvent(reply))


async def capture(
    into: dict[uuid.UUID, outcome.Outcome[Any]], key: uuid.UUID, fn: Any, *args: Any
) -> None:
    """Run ``fn`` and keep its value or error under ``key``."""
    into[key] = await outcome.acapture(fn, *args)


async def registering(
    into: dict[uuid.UUID, outcome.Outcome[Any]],
    supervisor: Supervisor,
    event_id: uuid.UUID,
    registration_id: uuid.UUID,
) -> None:
    """Register under ``registration_id``; keep the answer, value or error."""
    into[registration_id] = await outcome.acapture(
        functools.partial(register, supervisor, event_id, registration_id=registration_id)
    )


@asynccontextmanager
async def counting_actor_tasks() -> AsyncIterator[TaskCounts]:
    """Count the tasks started for event actors (``spawned``)."""
    with counting_tasks(lambda name: name.startswith("event-actor")) as tasks:
        yield tasks


def error_of(result: outcome.Outcome[Any]) -> BaseException:
    assert isinstance(result, outcome.Error), f"expected an error, got {result!r}"
    return result.error


def value_of(result: outcome.Outcome[Any]) -> Any:
    assert isinstance(result, outcome.Value), f"expected a value, got {result!r}"
    return result.value


def error_of_or_none(result: outcome.Outcome[Any]) -> BaseException | None:
    return result.error if isinstance(result, outcome.Error) else None


def peers_into(shared: list[Change]) -> Peers:
    """Peers that take what is shared and store nothing: there is no Redis here."""

    async def store(event: Event) -> None:
        await trio.lowlevel.checkpoint()

    async def store_gone(event_id: uuid.UUID) -> None:
        await trio.lowlevel.checkpoint()

    return Peers(shared.append, store, store_gone)


def remote_change(event: Event, seq: int) -> Change:
    """A capacity update made through another daemon, as the relay delivers it."""
    counts = EventCounts(event.id, event.max_attendees, seq - 1, 0, seq, utc_now())
    return Change("eventCapacityUpdate", event.at_counts(counts), seq, utc_now())
# --- real-time: events, changes and outboxes built directly, no daemon ---------------

EVENT_A = uuid.UUID(int=0xA)
EVENT_B = uuid.UUID(int=0xB)
EVENT_C = uuid.UUID(int=0xC)
AT = datetime(2027, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)
_CREATED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
_STARTS = datetime(2027, 1, 1, 18, 0, tzinfo=UTC)


def make_event(
    event_id: uuid.UUID = EVENT_A,
    *,
    max_attendees: int = 100,
    confirmed: int = 0,
    waitlist: int = 0,
    version: int = 1,
) -> Event:
    return Event(
        id=event_id,
        name="Trio meetup",
        description="Structured concurrency, in person.",
        starts_at=_STARTS,
        duration_minutes=90,
        location="Room 1",
        max_attendees=max_attendees,
        confirmed_count=confirmed,
        waitlist_count=waitlist,
        version=version,
        created_at=_CREATED,
        updated_at=_CREATED + timedelta(minutes=version),
    )


def capacity(event_id: uuid.UUID, seq: int, confirmed: int = 0, max_attendees: int = 100) -> Change:
    event = make_event(event_id, max_attendees=max_attendees, confirmed=confirmed, version=seq)
    return Change("eventCapacityUpdate", event, seq, AT)


def updated(event_id: uuid.UUID, seq: int) -> Change:
    return Change("eventUpdated", make_event(event_id, version=seq), seq, AT)


def client_messages(data: bytes) -> list[str]:
    """The text messages a WebSocket client (wsproto's, which checks) reads from server bytes."""
    client = wsproto.Connection(wsproto.ConnectionType.CLIENT)
    client.receive_data(data)
    messages: list[str] = []
    for event in client.events():
        assert isinstance(event, wsproto.events.TextMessage), event
        assert event.message_finished
        messages.append(event.data)
    return messages


def close_code_taken(outbox: Outbox) -> int:
    """The code of the close an outbox asks for, as its taker learns it."""
    with pytest.raises(Closing) as info:
        outbox.take_nowait()
    return info.value.code


class Taker:
    """An outbox's consumer the way the fan-out is one: told by ``on_ready``, it takes all."""

    def __init__(self, size: int) -> None:
        self._told = trio.Event()
        self.outbox = Outbox(size, on_ready=self._tell)

    def _tell(self) -> None:
        self._told.set()

    async def take(self) -> list[Change]:
        """What is queued, waiting until something is; raises :class:`Closing` on a close."""
        while not (taken := self.outbox.take_nowait()):
            await self._told.wait()
            self._told = trio.Event()
        return taken


# --- eventd's serve loop in this process, and clients with nothing in between ---

# Virtual seconds under the autojump clock, real seconds otherwise.
WAIT_SECONDS = 20

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Receive, Send], Awaitable[None]]


class App:
    """A small ASGI app: HTTP requests to ``http`` (else ``ok``), websockets to ``websocket``."""

    def __init__(self, *, http: Handler | None = None, websocket: Handler | None = None) -> None:
        self.http = http
        self.websocket = websocket

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": f"{message['type']}.complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        elif scope["type"] == "http":
            await (self.http or answer_ok)(receive, send)
        else:
            assert self.websocket is not None
            await self.websocket(receive, send)


async def answer_ok(receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body", False):
        pass
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", b"2")],
    })
    await send({"type": "http.response.body", "body": b"ok"})


@dataclasses.dataclass
class Served:
    port: int
    stop: trio.Event  # set: the shutdown trigger returns
    limiter: ConnectionLimiter


def listening(config: Config) -> tuple[hypercorn.config.Config, Any]:
    """eventd's hypercorn configuration, bound to a free loopback port, and its sockets."""
    server = dataclasses.replace(config.server, bind="127.0.0.1:0")
    hc = hypercorn_config(dataclasses.replace(config, server=server))
    sockets = hc.create_sockets()
    for sock in sockets.insecure_sockets:
        sock.listen(hc.backlog)
    return hc, sockets


@asynccontextmanager
async def serving(app: App, config: Config | None = None) -> AsyncIterator[Served]:
    """eventd's serve loop serving ``app``, as ``config`` says; stopped (gracefully) at the end."""
    config = config or Config()
    hc, sockets = listening(config)
    limiter = ConnectionLimiter(
        config.server.max_connections, config.server.max_connections_per_client
    )
    try:
        served = Served(sockets.insecure_sockets[0].getsockname()[1], trio.Event(), limiter)
        async with trio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(
                    serve,
                    wrap_app(app, hc.wsgi_max_body_size, None),
                    hc,
                    sockets.insecure_sockets,
                    served.stop.wait,
                    limiter=limiter,
                    header_timeout_seconds=config.server.header_timeout_seconds,
                )
            )
            yield served
            served.stop.set()
    finally:
        for sock in sockets.insecure_sockets:
            sock.close()


class RawHttp:
    """One keep-alive HTTP/1.1 connection, framed by h11 on the client side."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, port: int, local_address: str | None = None) -> RawHttp:
        return cls(await trio.open_tcp_stream("127.0.0.1", port, local_address=local_address))

    async def request(
        self, method: str, target: str, body: bytes = b"", content_type: str = "application/json"
    ) -> tuple[int, dict[str, str], bytes]:
        if self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        headers = [("Host", "eventd"), ("Content-Length", str(len(body)))]
        if body:
            headers.append(("Content-Type", content_type))
        data = self.h11.send(h11.Request(method=method, target=target, headers=headers))
        data += self.h11.send(h11.Data(data=body)) if body else b""
        await self.stream.send_all(data + self.h11.send(h11.EndOfMessage()))
        status, response_headers, content = 0, {}, b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.stream.receive_some())
            elif isinstance(event, h11.Response):
                status = event.status_code
                response_headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                content += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, response_headers, content

    async def closed_by_peer(self) -> bool:
        """True once the daemon closes the connection (EOF), without our sending anything."""
        return await self.stream.receive_some() == b""


class RawClient:
    """A websocket client with nothing between the test and the bytes: wsproto on a socket.

    It reads only when asked, answers pings only when told to, and checks
    every frame the server sends.
    """

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.answer_pings = False
        self.pings = 0
        self._parts: list[str] = []
        self._messages: list[dict[str, Any]] = []
        self.close: CloseConnection | None = None

    @classmethod
    async def open(cls, port: int, path: str) -> RawClient:
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", port))
        client = cls(sock)
        await client.send(Request(host=f"127.0.0.1:{port}", target=path))
        with trio.fail_after(WAIT_SECONDS):
            while not isinstance(event := await client.next_event(), AcceptConnection):
                assert event is not None, "closed during the handshake"
        return client

    async def message(self) -> dict[str, Any]:
        with trio.fail_after(WAIT_SECONDS):
            while not self._messages:
                assert await self.next_event() is not None, "closed"
        return self._messages.pop(0)

    async def until_closed(self) -> CloseConnection:
        with trio.fail_after(WAIT_SECONDS):
            while self.close is None:
                await self.next_event()
        return self.close

    async def send_close(self, code: int) -> None:
        await self.send(CloseConnection(code=code))

    async def send(self, event: Any) -> None:
        await self.sock.send(self.ws.send(event))

    async def next_event(self) -> Any:
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                self._parts.append(event.data)
                if event.message_finished:
                    self._messages.append(json.loads("".join(self._parts)))
                    self._parts.clear()
            elif isinstance(event, Ping):
                self.pings += 1
                if self.answer_pings:
                    await self.send(event.response())
            elif isinstance(event, CloseConnection):
                self.close = event
            return event
        data = await self.sock.recv(1 << 16)
        self.ws.receive_data(data or None)
        return (await self.next_event()) if data else None


def ws_url(http_url: str, path: str) -> str:
    return http_url.replace("http://", "ws://") + path


async def next_message(ws: trio_websocket.WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(WAIT_SECONDS):
        message = await ws.get_message()
    assert isinstance(message, str)
    return json.loads(message)  # type: ignore[no-any-return]


# --- a webhook receiver ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Delivered:
    """One request a :class:`WebhookReceiver` took."""

    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    received_at: float = dataclasses.field(default_factory=time.time)  # wall clock

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """An HTTP/1.1 server on 127.0.0.1 (trio and h11) that records what it is sent.

    Each request gets the next of ``answers`` (a status; ``None``: no answer
    until :attr:`release` is set), then ``default``. ``in_flight`` counts the
    requests being answered, ``most_in_flight`` the most at once. Start it
    with ``await nursery.start(receiver.serve)``.
    """

    def __init__(self, answers: list[int | None] | None = None, default: int = 200) -> None:
        self.answers = list(answers or [])
        self.default = default
        self.received: list[Delivered] = []
        self.release = trio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.port = 0
        self._arrived = trio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        await trio.serve_listeners(self._connection, listeners, task_status=task_status)

    async def wait_for(self, count: int, seconds: float = WAIT_SECONDS) -> list[Delivered]:
        """The requests received, once there are at least ``count`` (within ``seconds``)."""
        with trio.fail_after(seconds):
            while len(self.received) < count:
                await self._arrived.wait()
        return self.received

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError,
                                 h11.RemoteProtocolError):
            async with stream:
                while True:
                    request, body = await self._read_request(conn, stream)
                    if request is None:
                        return
                    await self._answer(conn, stream, request, body)
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()

    async def _read_request(
        self, conn: h11.Connection, stream: trio.SocketStream
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(1 << 16)
                if not data:
                    return None, b""
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, body
            else:
                return None, b""

    async def _answer(
        self, conn: h11.Connection, stream: trio.SocketStream, request: h11.Request, body: bytes
    ) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.received.append(Delivered(request.target.decode(), headers, body))
            self._arrived.set()
            self._arrived = trio.Event()
            status = self.answers.pop(0) if self.answers else self.default
            if status is None:
                await self.release.wait()
                status = self.default
            extra = [("Location", "http://127.0.0.1:1/elsewhere")] if 300 <= status < 400 else []
            await stream.send_all(conn.send(h11.Response(
                status_code=status, headers=[("Content-Length", "0"), *extra])))
            await stream.send_all(conn.send(h11.EndOfMessage()))
        finally:
            self.in_flight -= 1
