"""Fault injection with real servers: PostgreSQL crashes, hangs or is cut off by
a network partition under load; the mail server is down; the daemon is told
to stop in the middle of everything.

Each test runs its own daemon process. The PostgreSQL that fails is a private
cluster started for the test (never the shared server), reached directly or
through a relay in this process that can drop the network silently; the SMTP
server is aiosmtpd in this process. Every wait is bounded; the only time
bounds asserted are generous "no hang" limits, never speed.

Run with ``-s`` to see what each fault showed (answers by phase, recovery
times); the same figures are recorded as test properties (``--junitxml``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from tests.conftest import assert_problem, future, unique_location
from tests.support import (
    DaemonProcess,
    PrivatePostgres,
    free_port,
    private_postgres,
    run_sql,
)
from tests.test_invariant import make_attendees
from tests.test_smtp import Inbox, Server

pytestmark = pytest.mark.slow

# Above /health's own 2 s database ping, so /health can still say "down" in time.
REQUEST_TIMEOUT_SECONDS = 3
# "No hang": an answer within the request deadline plus this much for a
# loaded, shared machine. Generous on purpose: this is not a speed test.
NO_HANG_SLACK_SECONDS = 10
WAIT_SECONDS = 60


async def new_event(client: httpx.AsyncClient, capacity: int) -> str:
    response = await client.post(
        "/events",
        json={
            "name": "Faulty",
            "date": future(),
            "location": unique_location(),
            "maxAttendees": capacity,
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def registration_truth(database_url: str, event_id: str) -> dict[str, Any]:
    """What the database holds for one event: rows, counts, queued confirmations."""
    eid = uuid.UUID(event_id)
    rows = run_sql(database_url, "SELECT id, status FROM registrations WHERE event_id = $1", eid)
    event = run_sql(
        database_url,
        "SELECT confirmed_count, waitlist_count, max_attendees FROM events WHERE id = $1",
        eid,
    )[0]
    confirmations = run_sql(
        database_url,
        "SELECT count(*) AS n FROM email_outbox"
        " WHERE kind = 'registration_confirmed' AND payload->'event'->>'id' = $1",
        event_id,
    )
    return {
        "ids": {str(r["id"]) for r in rows},
        "confirmed_rows": sum(r["status"] == "confirmed" for r in rows),
        "waitlisted_rows": sum(r["status"] == "waitlisted" for r in rows),
        "confirmed_count": event["confirmed_count"],
        "waitlist_count": event["waitlist_count"],
        "max_attendees": event["max_attendees"],
        "confirmations": confirmations[0]["n"],
    }


# --- PostgreSQL crashes, hangs or is cut off under load -----------------------------------------


@dataclasses.dataclass(frozen=True)
class Answer:
    phase: str  # "before" the fault was injected, "outage" from then on
    status: int | None  # None: no HTTP answer at all
    seconds: float
    response: httpx.Response | None
    error: str | None = None


class Storm:
    """Clients registering new attendees for one event, one at a time each, until told."""

    def __init__(self, client: httpx.AsyncClient, event_id: str, attendees: list[str]) -> None:
        self.client = client
        self.event_id = event_id
        self.supply = iter(attendees)
        self.answers: list[Answer] = []
        self.phase = "before"
        self._stop = trio.Event()

    def start(self, nursery: trio.Nursery, clients: int) -> None:
        for _ in range(clients):
            nursery.start_soon(self._one_client)

    def stop(self) -> None:
        self._stop.set()

    async def _one_client(self) -> None:
        while not self._stop.is_set() and (attendee := next(self.supply, None)):
            started, phase = trio.current_time(), self.phase
            try:
                response = await self.client.post(
                    "/registrations", json={"eventId": self.event_id, "attendeeId": attendee}
                )
            except httpx.HTTPError as exc:
                self.answers.append(
                    Answer(phase, None, trio.current_time() - started, None, repr(exc))
                )
                return
            self.answers.append(
                Answer(phase, response.status_code, trio.current_time() - started, response)
            )
            if response.status_code == 503:
                await trio.sleep(0.1)  # a polite client backs off

    def count(self, status: int, phase: str | None = None) -> int:
        return sum(a.status == status and phase in (None, a.phase) for a in self.answers)

    async def wait_for(self, status: int, count: int, phase: str | None = None) -> None:
        with trio.fail_after(WAIT_SECONDS):
            while self.count(status, phase) < count:  # noqa: ASYNC110 - the clients count
                await trio.sleep(0.01)

    def acknowledged(self) -> set[str]:
        return {
            a.response.json()["id"]
            for a in self.answers
            if a.status == 201 and a.response is not None
        }

    def check_answers(self) -> float:
        """Every request answered in time, 201 or a 503 problem; returns the slowest."""
        assert [a.error for a in self.answers if a.status is None] == []
        slowest = max(a.seconds for a in self.answers)
        # No hang: within the request deadline, plus slack for a loaded machine.
        assert slowest <= REQUEST_TIMEOUT_SECONDS + NO_HANG_SLACK_SECONDS, slowest
        statuses = collections.Counter(a.status for a in self.answers)
        assert set(statuses) <= {201, 503}, statuses
        for a in self.answers:
            if a.status == 503:
                assert a.response is not None
                assert_problem(a.response, 503, "unavailable")
                assert int(a.response.headers["retry-after"]) >= 1
        return slowest


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@pytest.fixture
def daemon_on_private_pg(private_pg: PrivatePostgres, workdir: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(
        private_pg.url, workdir, server={"request_timeout_seconds": REQUEST_TIMEOUT_SECONDS}
    ).start()
    yield daemon
    assert daemon.stop() == 0, daemon.log()


async def wait_healthy(client: httpx.AsyncClient) -> float:
    """Poll /health until the daemon has reconnected by itself; returns how long it took."""
    started = trio.current_time()
    with trio.fail_after(WAIT_SECONDS):
        while (await client.get("/health")).status_code != 200:  # noqa: ASYNC110
            await trio.sleep(0.1)
    return trio.current_time() - started


@dataclasses.dataclass(frozen=True)
class LateRegistrations:
    seconds: float  # from /health saying ok until the first 201
    acknowledged: set[str]


async def registrations_after_recovery(
    client: httpx.AsyncClient, event_id: str, attendees: list[str]
) -> LateRegistrations:
    """Once /health is ok, writes come back too (bounded), then every one succeeds."""
    started = trio.current_time()
    supply = iter(attendees)
    with trio.fail_after(WAIT_SECONDS):
        while True:
            first = await client.post(
                "/registrations", json={"eventId": event_id, "attendeeId": next(supply)}
            )
            if first.status_code == 201:
                break
            assert_problem(first, 503, "unavailable")  # a 503 may still have committed
            await trio.sleep(0.2)
    seconds = trio.current_time() - started
    rest = [
        await client.post("/registrations", json={"eventId": event_id, "attendeeId": a})
        for a in list(supply)[:20]
    ]
    assert [r.status_code for r in rest] == [201] * len(rest), [r.text for r in rest]
    return LateRegistrations(seconds, {r.json()["id"] for r in [first, *rest]})


async def check_nothing_lost(
    client: httpx.AsyncClient, database_url: str, event_id: str, acknowledged: set[str]
) -> int:
    """Every 201 is a row; counts equal rows, within capacity; the daemon agrees.

    Returns how many rows were committed without their 201 reaching the client
    (a commit the crash cut the answer of: allowed, a 503 never promised "not done").
    """
    truth = await trio.to_thread.run_sync(registration_truth, database_url, event_id)
    assert acknowledged <= truth["ids"], len(acknowledged - truth["ids"])
    assert truth["confirmed_count"] == truth["confirmed_rows"] == len(truth["ids"])
    assert truth["confirmed_count"] <= truth["max_attendees"]
    assert truth["waitlist_count"] == truth["waitlisted_rows"] == 0
    # Each committed registration queued its confirmation in the same transaction.
    assert truth["confirmations"] == len(truth["ids"])
    event = (await client.get(f"/events/{event_id}")).json()
    assert event["registeredCount"] == truth["confirmed_count"]
    return len(truth["ids"]) - len(acknowledged)


def report(name: str, storm: Storm, record_property: Any, **more: Any) -> None:
    by_phase = collections.Counter((a.phase, a.status) for a in storm.answers)
    observed = {
        "201_before": by_phase["before", 201],
        "503_in_flight_at_fault": by_phase["before", 503],
        "201_during_outage": by_phase["outage", 201],
        "503_during_outage": by_phase["outage", 503],
        **{k: round(v, 2) if isinstance(v, float) else v for k, v in more.items()},
    }
    for key, value in observed.items():
        record_property(f"{name}_{key}", value)
    print(f"\n{name}: {observed}")


async def recover_and_report(
    name: str,
    client: httpx.AsyncClient,
    database_url: str,
    event_id: str,
    storm: Storm,
    record_property: Any,
    outage_seconds: float,
) -> None:
    """After a fault: back by itself, takes registrations again, lost nothing; say the figures."""
    recovery_seconds = await wait_healthy(client)
    late = await registrations_after_recovery(
        client, event_id, await make_attendees(database_url, 400)
    )
    slowest = storm.check_answers()
    unacknowledged = await check_nothing_lost(
        client, database_url, event_id, storm.acknowledged() | late.acknowledged
    )
    report(
        name,
        storm,
        record_property,
        outage_seconds=outage_seconds,
        recovery_seconds=recovery_seconds,
        writes_back_after_seconds=late.seconds,
        slowest_answer_seconds=slowest,
        committed_without_201=unacknowledged,
    )


async def test_postgres_crash_under_load_gives_503s_then_recovers_losing_nothing(
    private_pg: PrivatePostgres,
    daemon_on_private_pg: DaemonProcess,
    record_property: Any,
) -> None:
    pg, daemon = private_pg, daemon_on_private_pg
    clients = 32
    # Room for /health beside the storm: a request never waits for a connection here.
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=daemon.url, timeout=60, limits=limits) as client:
        event_id = await new_event(client, capacity=5000)
        storm = Storm(client, event_id, await make_attendees(pg.url, 6000))
        async with trio.open_nursery() as nursery:
            storm.start(nursery, clients)
            await storm.wait_for(201, 200)
            storm.phase = "outage"
            await trio.to_thread.run_sync(pg.stop, "immediate")  # a crash: clients cut
            crashed_at = trio.current_time()
            await storm.wait_for(503, 3 * clients, "outage")  # every client hears, often
            health = await client.get("/health")
            storm.stop()
        outage_seconds = trio.current_time() - crashed_at
        assert health.status_code == 503, health.text
        assert health.json()["status"] == "down"
        assert health.json()["checks"]["database"]["status"] == "down"

        await trio.to_thread.run_sync(pg.start)
        await recover_and_report(
            "postgres_crash", client, pg.url, event_id, storm, record_property, outage_seconds
        )


async def test_postgres_hanging_under_load_gives_503s_in_time_then_recovers(
    private_pg: PrivatePostgres,
    daemon_on_private_pg: DaemonProcess,
    record_property: Any,
) -> None:
    pg, daemon = private_pg, daemon_on_private_pg
    clients = 32
    # Room for /health beside the storm: a request never waits for a connection here.
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=daemon.url, timeout=60, limits=limits) as client:
        event_id = await new_event(client, capacity=5000)
        storm = Storm(client, event_id, await make_attendees(pg.url, 6000))
        try:
            async with trio.open_nursery() as nursery:
                storm.start(nursery, clients)
                await storm.wait_for(201, 200)
                storm.phase = "outage"
                pg.freeze()  # connections stay open; nothing answers on them
                frozen_at = trio.current_time()
                await storm.wait_for(503, clients, "outage")
                health = await client.get("/health")
                storm.stop()
            outage_seconds = trio.current_time() - frozen_at
        finally:
            pg.thaw()
        assert health.status_code == 503, health.text
        assert health.json()["status"] == "down"

        await recover_and_report(
            "postgres_hang", client, pg.url, event_id, storm, record_property, outage_seconds
        )


class Partition:
    """A TCP relay in front of PostgreSQL that can cut the network silently.

    Cut: nothing passes either way and nothing is closed; new connections are
    accepted and never answered. Healed: new connections pass again, but those
    open at the cut stay dead, as TCP connections across a real partition do.
    """

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target_port = target_port
        self._cut = False
        self._cuts = 0  # a connection opened before the latest cut is dead
        self._armed = False
        self.cut_happened = trio.Event()

    def cut_mid_transaction(self) -> None:
        """Cut as soon as a session has begun a transaction and sent a statement in it.

        The server runs that statement (an event's row lock taken) and never
        hears the COMMIT: it is left holding the transaction, locks and all.
        """
        self._armed = True

    def cut(self) -> None:
        self._armed = False
        self._cut = True
        self._cuts += 1
        self.cut_happened.set()

    def heal(self) -> None:
        self._cut = False

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        task_status.started()
        await trio.serve_listeners(self._relay, listeners)

    async def _relay(self, downstream: trio.SocketStream) -> None:
        opened_at_cut = self._cuts
        async with downstream:
            if self._cut:
                await self._pump(downstream, None, opened_at_cut, watch=False)
                return
            async with await trio.open_tcp_stream("127.0.0.1", self._target_port) as upstream:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, downstream, upstream, opened_at_cut, True)
                    nursery.start_soon(self._pump, upstream, downstream, opened_at_cut, False)

    async def _pump(
        self,
        source: trio.SocketStream,
        sink: trio.SocketStream | None,
        opened_at_cut: int,
        watch: bool,  # the client's side: look for a transaction to cut in
    ) -> None:
        began = False
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while data := await source.receive_some(65536):
                if sink is not None and opened_at_cut == self._cuts:
                    await sink.send_all(data)
                # else: lost on the way, and the sender never hears about it
                if watch and self._armed:
                    if began:  # the statement after BEGIN went through: cut now
                        self.cut()
                    # eventd sends BEGIN as a simple query: its text is on the wire.
                    began = b"BEGIN\x00" in data


async def test_network_partition_mid_transaction_gives_503s_then_recovers(
    private_pg: PrivatePostgres,
    workdir: Path,
    record_property: Any,
) -> None:
    """A partition that leaves the server holding an event's row lock for a session
    whose daemon is gone: once healed, writes to that event must work again."""
    pg = private_pg
    clients = 32
    partition = Partition(pg.port)
    async with trio.open_nursery() as relays:
        await relays.start(partition.serve)
        daemon = await trio.to_thread.run_sync(
            lambda: DaemonProcess(
                f"postgresql://postgres@127.0.0.1:{partition.port}/postgres",
                workdir,
                server={"request_timeout_seconds": REQUEST_TIMEOUT_SECONDS},
            ).start()
        )
        try:
            limits = httpx.Limits(
                max_connections=clients + 4, max_keepalive_connections=clients + 4
            )
            async with httpx.AsyncClient(base_url=daemon.url, timeout=60, limits=limits) as client:
                event_id = await new_event(client, capacity=5000)
                supply = await make_attendees(pg.url, 6400)
                storm = Storm(client, event_id, supply[:6000])
                async with trio.open_nursery() as nursery:
                    storm.start(nursery, clients)
                    await storm.wait_for(201, 200)
                    storm.phase = "outage"
                    partition.cut_mid_transaction()
                    # A registration batch is one statement, its own transaction;
                    # an update is BEGIN, the event's row lock, more, COMMIT: cut in it.
                    nursery.start_soon(
                        functools.partial(client.patch, f"/events/{event_id}",
                                          json={"description": "Cut off mid-update"})
                    )
                    with trio.fail_after(WAIT_SECONDS):
                        await partition.cut_happened.wait()
                    cut_at = trio.current_time()
                    await storm.wait_for(503, clients, "outage")
                    health = await client.get("/health")
                    storm.stop()
                outage_seconds = trio.current_time() - cut_at
                assert health.status_code == 503, health.text
                assert health.json()["status"] == "down", health.text

                partition.heal()
                recovery_seconds = await wait_healthy(client)
                late = await registrations_after_recovery(client, event_id, supply[6000:])

                slowest = storm.check_answers()
                unacknowledged = await check_nothing_lost(
                    client, pg.url, event_id, storm.acknowledged() | late.acknowledged
                )
        finally:
            code = await trio.to_thread.run_sync(daemon.stop)
            relays.cancel_scope.cancel()
    assert code == 0, daemon.log()
    report(
        "postgres_partition",
        storm,
        record_property,
        outage_seconds=outage_seconds,
        recovery_seconds=recovery_seconds,
        writes_back_after_seconds=late.seconds,
        slowest_answer_seconds=slowest,
        committed_without_201=unacknowledged,
    )


# --- the mail server is down -------------------------------------------------------


async def email_check(client: httpx.AsyncClient) -> dict[str, Any]:
    health = await client.get("/health")
    assert health.status_code == 200, health.text
    return health.json()["checks"]["email"]  # type: ignore[no-any-return]


async def test_smtp_down_mail_waits_and_each_message_arrives_once(
    fresh_database_url: str,
    workdir: Path,
    record_property: Any,
) -> None:
    inbox = Inbox()
    server = Server(inbox)  # a port with nothing listening on it, yet
    daemon = DaemonProcess(
        fresh_database_url,
        workdir,
        email={"transport": "smtp", "host": "127.0.0.1", "port": server.port, "security": "none"},
    ).start()
    try:
        async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
            event_id = await new_event(client, capacity=3)
            people = 6  # 3 confirmed and 3 waitlisted: 6 messages
            for n in range(people):
                attendee = (
                    await client.post(
                        "/attendees",
                        json={
                            "name": f"Mail {n}",
                            "email": f"mail.{uuid.uuid4().hex[:10]}@example.com",
                        },
                    )
                ).json()
                registered = await client.post(
                    "/registrations",
                    json={"eventId": event_id, "attendeeId": attendee["id"], "waitlist": True},
                )
                assert registered.status_code == 201, registered.text
            # Every message tried and failed once: the daemon says so, and serves on.
            with trio.fail_after(WAIT_SECONDS):
                while (await email_check(client))["failing"] < people:  # noqa: ASYNC110
                    await trio.sleep(0.1)
            health = await client.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "degraded"
            email = health.json()["checks"]["email"]
            assert (email["status"], email["pending"], email["failing"]) == (
                "degraded",
                people,
                people,
            )
            assert email["oldestPendingSeconds"] > 0

            await trio.to_thread.run_sync(server.up)
            came_back = trio.current_time()
            try:
                with trio.fail_after(WAIT_SECONDS):
                    while (await email_check(client))["pending"]:  # noqa: ASYNC110
                        await trio.sleep(0.1)
                delivered_after = trio.current_time() - came_back
                await trio.sleep(1)  # time for a duplicate to show up, if one were coming
            finally:
                await trio.to_thread.run_sync(server.down)
            final = (await client.get("/health")).json()
        outbox = await trio.to_thread.run_sync(
            lambda: run_sql(fresh_database_url, "SELECT id, attempts FROM email_outbox")
        )
    finally:
        assert daemon.stop() == 0, daemon.log()

    received = collections.Counter(m["Message-ID"] for m in inbox.messages)
    assert received == collections.Counter(f"<{row['id']}@eventd>" for row in outbox)
    assert len(received) == people
    assert final["status"] == "ok"
    assert final["checks"]["email"]["pending"] == 0
    observed = {
        "messages": people,
        "attempts_per_message": sorted(row["attempts"] for row in outbox),
        "delivered_seconds_after_smtp_came_back": round(delivered_after, 2),
    }
    for key, value in observed.items():
        record_property(key, value)
    print(f"\nsmtp down: {observed}")


# --- SIGTERM in the middle of everything ------------------------------------------

# eventd.http.server.SHUTDOWN_GRACE_SECONDS is 10: the stop must end within it,
# plus slack for a loaded machine, whatever the clients do.
STOP_BOUND_SECONDS = 10 + 15


async def close_code(ws: WebSocketConnection) -> int | None:
    """Read what was queued, then the close: its code."""
    with trio.fail_after(WAIT_SECONDS):
        while True:
            try:
                await ws.get_message()
            except ConnectionClosed as closed:
                return closed.reason.code if closed.reason is not None else None


async def test_sigterm_mid_storm_with_streams_and_stuck_clients_exits_zero_in_time(
    fresh_database_url: str, workdir: Path, record_property: Any
) -> None:
    daemon = DaemonProcess(fresh_database_url, workdir).start()
    answered: list[httpx.Response] = []
    try:
        async with httpx.AsyncClient(base_url=daemon.url, timeout=60) as client:
            event_id = await new_event(client, capacity=1000)
            attendees = await make_attendees(fresh_database_url, 300)
            # Clients that do nothing: a websocket that never reads and an idle
            # keep-alive HTTP connection. Neither may hold the stop past its bound.
            stuck = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
            stuck.sendall(
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            idle = httpx.AsyncClient(base_url=daemon.url, timeout=10)
            assert (await idle.get("/health")).status_code == 200
            ws_base = daemon.url.replace("http://", "ws://")
            async with (
                open_websocket_url(f"{ws_base}/ws") as everything,
                open_websocket_url(f"{ws_base}/ws/events/{event_id}") as one,
            ):
                with trio.fail_after(WAIT_SECONDS):
                    assert "snapshot" in await one.get_message()

                async def register(attendee_id: str) -> None:
                    try:
                        response = await client.post(
                            "/registrations", json={"eventId": event_id, "attendeeId": attendee_id}
                        )
                    except httpx.HTTPError:
                        return  # refused or cut: sent after the listener closed
                    answered.append(response)

                async with trio.open_nursery() as nursery:
                    for attendee_id in attendees:
                        nursery.start_soon(register, attendee_id)
                    with trio.fail_after(WAIT_SECONDS):
                        while len(answered) < 20:  # noqa: ASYNC110 - filled by the tasks
                            await trio.sleep(0.005)
                    stopping = trio.current_time()
                    code = await trio.to_thread.run_sync(daemon.stop, STOP_BOUND_SECONDS)
                    stop_seconds = trio.current_time() - stopping
                closes = [await close_code(everything), await close_code(one)]
            await idle.aclose()
            stuck.close()
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill()
    # A SIGKILL after the bound would show as -9 here.
    assert code == 0, daemon.log()
    assert closes == [1001, 1001]
    assert "stopped: writer flushed" in daemon.log()
    assert {r.status_code for r in answered} == {201}
    truth = await trio.to_thread.run_sync(registration_truth, fresh_database_url, event_id)
    # Every answered registration was committed; everything committed is counted.
    assert {r.json()["id"] for r in answered} <= truth["ids"]
    assert truth["confirmed_count"] == truth["confirmed_rows"] == len(truth["ids"])
    assert truth["confirmations"] == len(truth["ids"])
    observed = {
        "answered_201": len(answered),
        "not_answered": len(attendees) - len(answered),
        "rows_committed": len(truth["ids"]),
        "stop_seconds": round(stop_seconds, 2),
    }
    for key, value in observed.items():
        record_property(f"sigterm_{key}", value)
    print(f"\nsigterm mid-storm: {observed}")
