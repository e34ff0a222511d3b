"""The Supervisor and its EventActors in isolation.

Rules of this file: no sockets and no database — ``FakeStore`` stands in for
both ``load_event`` and the writer's ``offer``, and tests script it (a
per-event gate that blocks the writer, a per-event error it raises once).
Time only moves through trio's ``MockClock`` (the ``autojump_clock``
fixture); nothing sleeps for real. Every wait is bounded by
``trio.fail_after``. Scheduling points are made explicit with
``trio.testing.wait_all_tasks_blocked`` so each assertion is deterministic.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import gc
import logging
import math
import uuid
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import outcome
import pytest
import trio
import trio.testing

from eventd.actors import messages as m
from eventd.actors.event_actor import GAP_WAIT_SECONDS, Peers
from eventd.actors.mailbox import Mailbox, MailboxClosed
from eventd.actors.supervisor import ActorCrashed, Supervisor
from eventd.errors import AlreadyRegistered, EventFull, EventStarted, NotFound, Unavailable
from eventd.model import Event, EventCounts, Registration, utc_now
from eventd.realtime.changes import Change
from eventd.storage import commands as c
from eventd.storage.database import QueryFailed
from eventd.storage.writer import WriteCommand
from tests.support import TaskCounts, counting_tasks

# Virtual seconds under the autojump clock, real seconds otherwise: generous,
# because a hang, not slowness, is what they are there to catch.
TIMEOUT_SECONDS = 10


# --- the stand-in for PostgreSQL and the writer ------------------------------


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
            for part in cmd.parts()
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
            parts = command.parts()  # taken now, as the writer takes them when it runs
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
            return [[self._apply(part.event_id, op) for op in part.ops] for part in parts]
        [event_id] = events
        if isinstance(command, c.DeleteEvent):
            event = self.events.pop(event_id, None)
            if event is None:
                raise NotFound(f"Event {event_id} does not exist.")
            return _event_deleted(event)
        raise AssertionError(f"FakeStore cannot answer {command!r}")

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


# --- helpers -----------------------------------------------------------------


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


# --- registration ------------------------------------------------------------


async def test_registration_is_confirmed_and_published() -> None:
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=3, version=4)
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            rid, aid = uuid.uuid4(), uuid.uuid4()
            registration = await register(
                supervisor, event.id, registration_id=rid, attendee_id=aid
            )
            assert registration.id == rid
            assert registration.event_id == event.id
            assert registration.attendee_id == aid
            assert registration.status == "confirmed"
            assert registration.waitlist_position is None
            assert registration.created_at is not None

            assert [(ch.type, ch.seq) for ch in changes] == [("eventCapacityUpdate", 5)]
            assert changes[0].event.version == 5
            assert changes[0].event.confirmed_count == 1

            state = await supervisor.get_event(event.id)
            assert (state.confirmed_count, state.waitlist_count, state.version) == (1, 0, 5)
            assert state.available_spots == 2
            assert store.loads[event.id] == 1
            stats = supervisor.statistics()
            assert (stats.live_actors, stats.hydrations, stats.restarts) == (1, 1, 0)


async def test_waitlist_on_a_full_event_goes_to_the_writer() -> None:
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=1)
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await register(supervisor, event.id)
            waiting = await register(supervisor, event.id, waitlist=True)
            assert waiting.status == "waitlisted"
            assert waiting.waitlist_position == 1
            state = await supervisor.get_event(event.id)
            assert (state.confirmed_count, state.waitlist_count, state.version) == (1, 1, 3)
            assert [ch.seq for ch in changes] == [2, 3]


async def test_cancel_frees_the_spot_for_the_head_of_the_waitlist() -> None:
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=1)
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            first = await register(supervisor, event.id)
            second = await register(supervisor, event.id, waitlist=True)
            assert await cancel(supervisor, event.id, first.id) == (second.id,)
            state = await supervisor.get_event(event.id)
            assert (state.confirmed_count, state.waitlist_count, state.version) == (1, 0, 4)
            assert [(ch.type, ch.seq) for ch in changes][-1] == ("eventCapacityUpdate", 4)
            with pytest.raises(NotFound):
                await cancel(supervisor, event.id, first.id)


async def test_second_registration_of_an_attendee_is_refused() -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            attendee = uuid.uuid4()
            await register(supervisor, event.id, attendee_id=attendee)
            with pytest.raises(AlreadyRegistered):
                await register(supervisor, event.id, attendee_id=attendee)
            assert (await supervisor.get_event(event.id)).confirmed_count == 1
            assert len(changes) == 1


async def test_many_events_ready_together_share_one_command() -> None:
    """A round: every actor ready before the writer runs goes in one command, one part each.

    What reached an actor's mailbox after it joined the round is taken too:
    its turn is taken when the writer runs the command, not when it is queued.
    """
    store, changes = FakeStore(), []
    events = [store.add_event() for _ in range(5)]
    async with running(store, changes) as supervisor, counting_actor_tasks() as tasks:
        with trio.fail_after(TIMEOUT_SECONDS):
            for event in events:
                await supervisor.get_event(event.id)  # hydrate
            results: dict[uuid.UUID, outcome.Outcome[Any]] = {}
            asked = {event.id: [uuid.uuid4(), uuid.uuid4()] for event in events}
            async with trio.open_nursery() as nursery:
                for rids in zip(*asked.values(), strict=True):
                    for event, rid in zip(events, rids, strict=True):
                        nursery.start_soon(registering, results, supervisor, event.id, rid)
            [command] = store.commands
            assert isinstance(command, c.RegistrationOps)
            assert {part.event_id: {op.registration_id for op in part.ops}
                    for part in command.parts()} == {k: set(v) for k, v in asked.items()}
            assert all(isinstance(r, outcome.Value) for r in results.values())
            assert len(results) == 10
            assert supervisor.statistics().awake_actors == 0
    assert tasks.spawned == 0
    assert len(changes) == 10


async def test_a_round_refused_before_it_runs_answers_its_requests() -> None:
    """A writer that has stopped refuses a round at once: its requests, still in
    their mailboxes, are taken and answered, and the actors are dormant again."""
    store, changes = FakeStore(), []
    event = store.add_event()

    def refuse(command: WriteCommand[Any]) -> None:
        command.reply.fail(Unavailable("The daemon is shutting down."))

    supervisor = Supervisor(store.load_event, refuse, changes.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        with trio.fail_after(TIMEOUT_SECONDS):
            for _ in range(2):
                with pytest.raises(Unavailable):
                    await register(supervisor, event.id)
            assert supervisor.statistics().awake_actors == 0
        nursery.cancel_scope.cancel()
    assert changes == []


async def test_concurrent_requests_share_one_command_and_capacity_holds() -> None:
    """One turn at the writer, the rest the next turn — and no task of the actor's for either."""
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=5)
    async with running(store, changes) as supervisor, counting_actor_tasks() as tasks:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)  # hydrate
            gate = store.gate(event.id)
            results: dict[uuid.UUID, outcome.Outcome[Any]] = {}
            async with trio.open_nursery() as nursery:
                first = uuid.uuid4()
                nursery.start_soon(registering, results, supervisor, event.id, first)
                await trio.testing.wait_all_tasks_blocked()
                assert len(store.submitted_turns(event.id)) == 1  # the writer holds one turn
                assert supervisor.statistics().awake_actors == 1
                rest = [uuid.uuid4() for _ in range(29)]
                for rid in rest:
                    nursery.start_soon(registering, results, supervisor, event.id, rid)
                await trio.testing.wait_all_tasks_blocked()
                # The others wait in the mailbox, not in the writer.
                assert len(store.submitted_turns(event.id)) == 1
                assert not results
                gate.set()

            commands = store.submitted_turns(event.id)
            assert [len(cmd.ops) for cmd in commands] == [1, 29]
            assert [op.registration_id for op in commands[0].ops] == [first]
            assert {op.registration_id for op in commands[1].ops} == set(rest)

            assert len(results) == 30
            confirmed = [k for k, r in results.items() if isinstance(r, outcome.Value)]
            full = [k for k, r in results.items() if isinstance(error_of_or_none(r), EventFull)]
            assert len(confirmed) == 5
            assert len(full) == 25
            assert first in confirmed
            assert all(value_of(results[k]).status == "confirmed" for k in confirmed)

            state = await supervisor.get_event(event.id)
            assert (state.confirmed_count, state.version) == (5, 6)
            assert state == store.events[event.id]
            # One change per new version, in order.
            assert [(ch.type, ch.seq) for ch in changes] == [
                ("eventCapacityUpdate", v) for v in range(2, 7)
            ]
            assert supervisor.statistics().awake_actors == 0
            assert tasks.spawned == 0  # the writer's answer started the second turn


async def test_a_turn_the_writer_could_not_commit_is_answered_and_the_actor_goes_on() -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            store.failures[event.id] = Unavailable("The database is unreachable.")
            with pytest.raises(Unavailable):
                await register(supervisor, event.id)
            assert changes == []
            assert (await register(supervisor, event.id)).status == "confirmed"
            stats = supervisor.statistics()
            assert (stats.restarts, stats.awake_actors) == (0, 0)


async def test_an_event_edited_through_another_daemon_is_reloaded_before_the_answers() -> None:
    """The turn's answer shows a newer edit: the actor's task reloads, publishes, then answers."""
    store, changes = FakeStore(), []
    event = store.add_event()
    async with running(store, changes) as supervisor, counting_actor_tasks() as tasks:
        with trio.fail_after(TIMEOUT_SECONDS):
            await register(supervisor, event.id)
            assert tasks.spawned == 0
            store.edit_elsewhere(event.id, "Renamed")
            registration = await register(supervisor, event.id)
            assert registration.status == "confirmed"
            assert tasks.spawned == 1  # the reload waits for the database: in a task
            assert store.loads[event.id] == 2
            state = await supervisor.get_event(event.id)
            assert (state.name, state.confirmed_count, state.version) == ("Renamed", 2, 4)
            # Without peers nobody tells us the edit: the reloaded event is one update.
            assert [(ch.type, ch.seq) for ch in changes] == [
                ("eventCapacityUpdate", 2), ("eventUpdated", 4)
            ]
            assert changes[-1].event.name == "Renamed"
            await trio.testing.wait_all_tasks_blocked()
            assert supervisor.statistics().awake_actors == 0
            assert (await register(supervisor, event.id)).status == "confirmed"
            assert tasks.spawned == 1


def error_of_or_none(result: outcome.Outcome[Any]) -> BaseException | None:
    return result.error if isinstance(result, outcome.Error) else None


# --- the fast path -----------------------------------------------------------


async def test_full_event_answers_event_full_from_the_database() -> None:
    # No fast path for a full event (commit 9eed074): the database decides, so
    # a retrying attendee can hear already_registered instead.
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=2, confirmed=2)
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            with pytest.raises(EventFull):
                await register(supervisor, event.id)
            assert [len(cmd.ops) for cmd in store.submitted_turns(event.id)] == [1]
            assert changes == []
            assert (await supervisor.get_event(event.id)).version == event.version


async def test_registered_attendee_of_a_full_event_hears_already_registered() -> None:
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=1)
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            attendee = uuid.uuid4()
            await register(supervisor, event.id, attendee_id=attendee)
            with pytest.raises(AlreadyRegistered):
                await register(supervisor, event.id, attendee_id=attendee)
            with pytest.raises(EventFull):
                await register(supervisor, event.id)


async def test_started_event_answers_without_the_writer() -> None:
    store, changes = FakeStore(), []
    event = store.add_event(starts_in=-timedelta(minutes=1))
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            with pytest.raises(EventStarted):
                await register(supervisor, event.id)
            with pytest.raises(EventStarted):
                await register(supervisor, event.id, waitlist=True)
            assert store.commands == []
            assert changes == []


# --- supervision -------------------------------------------------------------


async def test_crash_fails_the_request_in_hand_and_the_actor_restarts(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    store, changes = FakeStore(), []
    crashing = store.add_event()
    busy = store.add_event()
    bystander = store.add_event()
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            for event in (crashing, busy, bystander):
                await register(supervisor, event.id)
            results: dict[uuid.UUID, outcome.Outcome[Any]] = {}
            async with trio.open_nursery() as nursery:
                # Another actor is in the middle of a write when the crash happens.
                gate = store.gate(busy.id)
                in_flight = uuid.uuid4()
                nursery.start_soon(registering, results, supervisor, busy.id, in_flight)
                await trio.testing.wait_all_tasks_blocked()

                store.failures[crashing.id] = RuntimeError("a bug in the command")
                with pytest.raises(ActorCrashed):
                    await register(supervisor, crashing.id)
                assert supervisor.statistics().restarts == 1
                assert any("crashed" in r.getMessage() for r in caplog.records)

                # Other actors keep working meanwhile.
                assert (await register(supervisor, bystander.id)).status == "confirmed"
                assert not results
                gate.set()

            assert value_of(results[in_flight]).status == "confirmed"

            # The next request to the crashed event succeeds on a reloaded actor.
            after = await register(supervisor, crashing.id)
            assert after.status == "confirmed"
            assert store.loads[crashing.id] == 2
            state = await supervisor.get_event(crashing.id)
            assert state == store.events[crashing.id]
            assert (state.confirmed_count, state.version) == (2, 3)

            stats = supervisor.statistics()
            assert stats.restarts == 1
            assert stats.live_actors == 3
            assert stats.hydrations == 3  # a restart reloads; it is not a new actor
            assert store.loads[busy.id] == 1
            assert store.loads[bystander.id] == 1
            assert (await supervisor.get_event(busy.id)).confirmed_count == 2
            assert (await supervisor.get_event(bystander.id)).confirmed_count == 2


async def test_restarted_actor_starts_from_the_database(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=2)
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await register(supervisor, event.id)
            # Another daemon fills the last spot; this actor has not heard of it.
            store.events[event.id] = dataclasses.replace(
                store.events[event.id], confirmed_count=2, version=3
            )
            store.failures[event.id] = RuntimeError("a bug")
            with pytest.raises(ActorCrashed):
                await register(supervisor, event.id)
            await trio.sleep(5)  # past the restart backoff; no request since
            commands_before = len(store.commands)
            # The reloaded actor holds what the database holds, without a write.
            state = await supervisor.get_event(event.id)
            assert (state.confirmed_count, state.version) == (2, 3)
            assert len(store.commands) == commands_before
            assert store.loads[event.id] == 2


async def test_requests_queued_behind_a_crash_are_answered_by_the_new_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)
            gate = store.gate(event.id)
            store.failures[event.id] = RuntimeError("a bug")
            results: dict[uuid.UUID, outcome.Outcome[Any]] = {}
            in_hand = uuid.uuid4()
            queued = [uuid.uuid4() for _ in range(3)]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(registering, results, supervisor, event.id, in_hand)
                await trio.testing.wait_all_tasks_blocked()
                for rid in queued:
                    nursery.start_soon(registering, results, supervisor, event.id, rid)
                await trio.testing.wait_all_tasks_blocked()
                gate.set()
            assert isinstance(error_of(results[in_hand]), ActorCrashed)
            # The mailbox outlives the crash: nothing queued is lost.
            assert all(value_of(results[rid]).status == "confirmed" for rid in queued)
            assert store.submitted_ids(event.id)[0] == in_hand
            assert sorted(store.submitted_ids(event.id)[1:]) == sorted(queued)
            state = await supervisor.get_event(event.id)
            assert (state.confirmed_count, state.version) == (3, 4)
            assert supervisor.statistics().restarts == 1
            assert store.loads[event.id] == 2


async def test_crashed_actor_of_a_deleted_event_is_not_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)
            # Deleted through another daemon before the restart reloads it.
            del store.events[event.id]
            store.failures[event.id] = RuntimeError("a bug")
            with pytest.raises(ActorCrashed):
                await register(supervisor, event.id)
            with pytest.raises(NotFound):
                await register(supervisor, event.id)
            stats = supervisor.statistics()
            assert (stats.live_actors, stats.restarts) == (0, 1)


async def test_failed_reload_after_a_crash_does_not_stop_the_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """DESIGN rule 6: a crash is logged, the actor restarted, and nothing else stops.

    The real ``load_event`` raises ``QueryFailed`` for any refusal that is not
    an outage; the restart must survive it like it survives ``Unavailable``.
    """
    store, changes = FakeStore(), []
    crashing = store.add_event()
    bystander = store.add_event()
    load = store.load_event
    refusals = 1

    async def load_refusing_once(event_id: uuid.UUID) -> Event | None:
        nonlocal refusals
        if event_id == crashing.id and store.loads[event_id] and refusals:
            refusals -= 1
            store.loads[event_id] += 1
            raise QueryFailed("internal error", "XX000")
        return await load(event_id)

    store.load_event = load_refusing_once  # type: ignore[method-assign]
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            for event in (crashing, bystander):
                await register(supervisor, event.id)
            store.failures[crashing.id] = RuntimeError("a bug")
            with pytest.raises(ActorCrashed):
                await register(supervisor, crashing.id)
            await trio.sleep(5)  # past every restart backoff
            assert (await register(supervisor, bystander.id)).status == "confirmed"
            assert (await register(supervisor, crashing.id)).status == "confirmed"
            assert store.events[crashing.id].confirmed_count == 2


# --- retirement --------------------------------------------------------------


async def test_idle_actor_retires_and_comes_back(autojump_clock: trio.testing.MockClock) -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    async with running(store, changes, idle_seconds=60) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS * 60):
            await register(supervisor, event.id)
            await trio.sleep(59)
            stats = supervisor.statistics()
            assert (stats.live_actors, stats.retirements) == (1, 0)
            await trio.sleep(2)
            stats = supervisor.statistics()
            assert (stats.live_actors, stats.retirements, stats.hydrations) == (0, 1, 1)

            again = await register(supervisor, event.id)
            assert again.status == "confirmed"
            assert store.loads[event.id] == 2
            stats = supervisor.statistics()
            assert (stats.live_actors, stats.retirements, stats.hydrations) == (1, 1, 2)
            state = await supervisor.get_event(event.id)
            assert (state.confirmed_count, state.version) == (2, 3)


async def test_actor_that_keeps_getting_messages_does_not_retire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=100)
    async with running(store, changes, idle_seconds=60) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS * 60):
            for _ in range(6):  # 300 s in all, never 60 s quiet
                await register(supervisor, event.id)
                await trio.sleep(50)
            # A long write is work, not idleness.
            gate = store.gate(event.id)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(register, supervisor, event.id)
                await trio.sleep(200)
                assert supervisor.statistics().live_actors == 1
                gate.set()
            stats = supervisor.statistics()
            assert (stats.live_actors, stats.retirements, stats.hydrations) == (1, 0, 1)
            assert store.loads[event.id] == 1
            assert (await supervisor.get_event(event.id)).confirmed_count == 7


async def test_ask_at_the_moment_of_retirement_is_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=100)
    async with running(store, changes, idle_seconds=60) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS * 120):
            for _ in range(10):
                # The idle deadline and this ask fall on the same clock tick:
                # either the actor stays, or the ask wakes a new one.
                assert (await register(supervisor, event.id)).status == "confirmed"
                await trio.sleep(60)
            assert (await supervisor.get_event(event.id)).confirmed_count == 10
            assert store.events[event.id].confirmed_count == 10
            stats = supervisor.statistics()
            assert stats.hydrations == stats.retirements + 1
            assert stats.live_actors == 1


# --- backpressure ------------------------------------------------------------


async def test_full_mailbox_makes_senders_wait() -> None:
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=100)
    async with running(store, changes, mailbox_size=4) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)
            gate = store.gate(event.id)
            results: dict[uuid.UUID, outcome.Outcome[Any]] = {}
            gave_up = uuid.uuid4()
            late = uuid.uuid4()
            blocked_scope = trio.CancelScope()

            async def impatient() -> None:
                with blocked_scope:
                    await register(supervisor, event.id, registration_id=gave_up)

            async with trio.open_nursery() as nursery:
                in_hand = uuid.uuid4()
                nursery.start_soon(registering, results, supervisor, event.id, in_hand)
                await trio.testing.wait_all_tasks_blocked()
                queued = [uuid.uuid4() for _ in range(4)]  # exactly the mailbox
                for rid in queued:
                    nursery.start_soon(registering, results, supervisor, event.id, rid)
                await trio.testing.wait_all_tasks_blocked()
                # The mailbox is full: these two cannot even hand their message over.
                nursery.start_soon(impatient)
                nursery.start_soon(registering, results, supervisor, event.id, late)
                await trio.testing.wait_all_tasks_blocked()
                assert not results
                # Give up the send: a message that was never accepted is never written.
                blocked_scope.cancel()
                await trio.testing.wait_all_tasks_blocked()
                assert blocked_scope.cancelled_caught
                assert len(store.submitted_turns(event.id)) == 1
                gate.set()

            submitted = store.submitted_ids(event.id)
            assert gave_up not in submitted
            assert sorted(submitted) == sorted([in_hand, *queued, late])
            assert set(results) == {in_hand, *queued, late}
            assert all(value_of(r).status == "confirmed" for r in results.values())
            assert (await supervisor.get_event(event.id)).confirmed_count == 6


# --- deletion ----------------------------------------------------------------


async def test_delete_publishes_and_fails_requests_behind_it() -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            kept = await register(supervisor, event.id)  # version 2
            gate = store.gate(event.id)
            results: dict[uuid.UUID, outcome.Outcome[Any]] = {}
            before, deletion, after, again, cancelling = (uuid.uuid4() for _ in range(5))
            async with trio.open_nursery() as nursery:
                # In hand at the writer, then [delete, register, delete, cancel] in one turn.
                nursery.start_soon(registering, results, supervisor, event.id, before)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(capture, results, deletion, delete, supervisor, event.id)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(registering, results, supervisor, event.id, after)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(capture, results, again, delete, supervisor, event.id)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(
                    capture, results, cancelling, cancel, supervisor, event.id, kept.id
                )
                await trio.testing.wait_all_tasks_blocked()
                gate.set()

            assert value_of(results[before]).status == "confirmed"
            assert value_of(results[deletion]) is None
            assert isinstance(error_of(results[after]), NotFound)
            assert isinstance(error_of(results[again]), NotFound)
            assert isinstance(error_of(results[cancelling]), NotFound)
            # Nothing reached the writer for the requests behind the deletion.
            assert store.submitted_ids(event.id) == [kept.id, before]
            assert isinstance(store.commands[-1], c.DeleteEvent)

            assert [(ch.type, ch.seq) for ch in changes] == [
                ("eventCapacityUpdate", 2),
                ("eventCapacityUpdate", 3),
                ("eventDeleted", 4),
            ]
            assert changes[-1].event.id == event.id
            assert supervisor.statistics().live_actors == 0

            with pytest.raises(NotFound):
                await register(supervisor, event.id)
            with pytest.raises(NotFound):
                await supervisor.get_event(event.id)
            assert store.loads[event.id] == 3
            assert supervisor.statistics().live_actors == 0


async def test_delete_fails_requests_waiting_in_and_outside_the_mailbox() -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    async with running(store, changes, mailbox_size=1) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)
            gate = store.gate(event.id)
            results: dict[uuid.UUID, outcome.Outcome[Any]] = {}
            deletion, queued, blocked = (uuid.uuid4() for _ in range(3))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(capture, results, deletion, delete, supervisor, event.id)
                await trio.testing.wait_all_tasks_blocked()
                for rid in (queued, blocked):  # one in the mailbox, one waiting to send
                    nursery.start_soon(registering, results, supervisor, event.id, rid)
                    await trio.testing.wait_all_tasks_blocked()
                gate.set()

            assert value_of(results[deletion]) is None
            assert isinstance(error_of(results[queued]), NotFound)
            assert isinstance(error_of(results[blocked]), NotFound)
            assert store.submitted_turns(event.id) == []
            assert [(ch.type, ch.seq) for ch in changes] == [("eventDeleted", 2)]
            assert supervisor.statistics().live_actors == 0


async def test_delete_of_an_event_deleted_elsewhere_is_not_found() -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)
            del store.events[event.id]
            with pytest.raises(NotFound):
                await delete(supervisor, event.id)
            # Its streams hear that it is gone, after the last version they saw.
            assert [(ch.type, ch.seq) for ch in changes] == [("eventDeleted", event.version + 1)]
            await trio.testing.wait_all_tasks_blocked()
            assert supervisor.statistics().live_actors == 0


async def test_unknown_event_is_not_found() -> None:
    store, changes = FakeStore(), []
    missing = uuid.uuid4()
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            with pytest.raises(NotFound):
                await register(supervisor, missing)
            with pytest.raises(NotFound):
                await supervisor.get_event(missing)
            assert store.loads[missing] == 2
            assert store.commands == []
            stats = supervisor.statistics()
            assert (stats.live_actors, stats.hydrations) == (0, 0)


async def test_concurrent_first_asks_hydrate_once() -> None:
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=100)
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(register, supervisor, event.id)
            assert store.loads[event.id] == 1
            assert supervisor.statistics().hydrations == 1
            assert (await supervisor.get_event(event.id)).confirmed_count == 10


# --- news from outside -------------------------------------------------------


async def test_counts_changed_adopts_only_newer_counts() -> None:
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=10, version=5)
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)
            now = utc_now()
            news = m.CountsChanged(EventCounts(event.id, 10, 3, 1, 7, now))
            supervisor.tell(event.id, news)
            await trio.testing.wait_all_tasks_blocked()
            state = await supervisor.get_event(event.id)
            assert (state.confirmed_count, state.waitlist_count, state.version) == (3, 1, 7)
            assert [(ch.type, ch.seq) for ch in changes] == [("eventCapacityUpdate", 7)]
            assert changes[0].event.confirmed_count == 3

            for stale in (
                EventCounts(event.id, 10, 9, 0, 6, now),  # older
                EventCounts(event.id, 10, 8, 0, 7, now),  # same version
            ):
                supervisor.tell(event.id, m.CountsChanged(stale))
                await trio.testing.wait_all_tasks_blocked()
            state = await supervisor.get_event(event.id)
            assert (state.confirmed_count, state.waitlist_count, state.version) == (3, 1, 7)
            assert len(changes) == 1
            assert store.commands == []


async def test_tell_does_not_wake_a_sleeping_actor() -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            supervisor.tell(
                event.id, m.CountsChanged(EventCounts(event.id, 10, 3, 0, 9, utc_now()))
            )
            await trio.testing.wait_all_tasks_blocked()
            assert store.loads[event.id] == 0
            assert supervisor.statistics().live_actors == 0
            assert changes == []


async def test_crash_is_logged_not_raised(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            with caplog.at_level(logging.ERROR, logger="eventd.actors.supervisor"):
                store.failures[event.id] = RuntimeError("boom")
                with pytest.raises(ActorCrashed):
                    await register(supervisor, event.id)
            crash = [r for r in caplog.records if r.name == "eventd.actors.supervisor"]
            assert len(crash) == 1
            assert crash[0].exc_info is not None
            assert isinstance(crash[0].exc_info[1], RuntimeError)


# --- dormant actors ----------------------------------------------------------
#
# A live actor has a task only while it has messages (or a change held back):
# ``awake_actors`` counts the actors with a turn under way, ``live_actors`` all of them.


def _peers(shared: list[Change]) -> Peers:
    """Peers that take what is shared and store nothing: there is no Redis here."""

    async def store(event: Event) -> None:
        await trio.lowlevel.checkpoint()

    async def store_gone(event_id: uuid.UUID) -> None:
        await trio.lowlevel.checkpoint()

    return Peers(shared.append, store, store_gone)


def _remote(event: Event, seq: int) -> Change:
    """A capacity update made through another daemon, as the relay delivers it."""
    counts = EventCounts(event.id, event.max_attendees, seq - 1, 0, seq, utc_now())
    return Change("eventCapacityUpdate", event.at_counts(counts), seq, utc_now())


async def test_hydrated_actor_is_dormant_until_a_message_wakes_it() -> None:
    store, changes = FakeStore(), []
    event = store.add_event(version=5)
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)
            await trio.testing.wait_all_tasks_blocked()
            stats = supervisor.statistics()
            assert (stats.live_actors, stats.awake_actors) == (1, 0)

            news = m.CountsChanged(EventCounts(event.id, 10, 2, 0, 6, utc_now()))
            supervisor.tell(event.id, news)
            assert supervisor.statistics().awake_actors == 1
            await trio.testing.wait_all_tasks_blocked()
            assert (await supervisor.get_event(event.id)).version == 6
            assert [(ch.type, ch.seq) for ch in changes] == [("eventCapacityUpdate", 6)]
            assert supervisor.statistics().awake_actors == 0

            registration = await register(supervisor, event.id)
            assert registration.status == "confirmed"
            await trio.testing.wait_all_tasks_blocked()
            stats = supervisor.statistics()
            assert (stats.live_actors, stats.awake_actors, stats.hydrations) == (1, 0, 1)
            assert store.loads[event.id] == 1


async def test_dormant_actor_releases_a_held_change_after_the_gap_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, changes, shared = FakeStore(), [], []
    event = store.add_event(version=1)
    async with running(store, changes, peers=_peers(shared)) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)
            # Version 3 arrives before version 2: it is held, and the task stays for it.
            supervisor.deliver_remote(_remote(event, 3))
            await trio.testing.wait_all_tasks_blocked()
            assert changes == []
            assert supervisor.statistics().awake_actors == 1

            await trio.sleep(GAP_WAIT_SECONDS * 0.9)
            assert changes == []
            await trio.sleep(GAP_WAIT_SECONDS * 0.2)
            assert [(ch.type, ch.seq) for ch in changes] == [("eventCapacityUpdate", 3)]
            assert supervisor.statistics().awake_actors == 0
            assert (await supervisor.get_event(event.id)).version == 3
            assert shared == []  # relayed changes are not shared back


async def test_held_change_goes_out_in_order_when_the_missing_one_arrives(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, changes, shared = FakeStore(), [], []
    event = store.add_event(version=1)
    async with running(store, changes, peers=_peers(shared)) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)
            supervisor.deliver_remote(_remote(event, 3))
            await trio.sleep(GAP_WAIT_SECONDS / 2)
            supervisor.deliver_remote(_remote(event, 2))
            await trio.testing.wait_all_tasks_blocked()
            assert [ch.seq for ch in changes] == [2, 3]
            assert supervisor.statistics().awake_actors == 0
            await trio.sleep(GAP_WAIT_SECONDS * 2)
            assert [ch.seq for ch in changes] == [2, 3]


async def test_sweep_retires_each_idle_actor_between_one_and_1_1_idle_periods(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, changes = FakeStore(), []
    early, late = store.add_event(), store.add_event()
    async with running(store, changes, idle_seconds=60) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS * 60):
            await register(supervisor, early.id)
            await trio.sleep(30)
            await register(supervisor, late.id)
            await trio.sleep(29.9)  # early: 59.9 s idle
            assert supervisor.statistics().live_actors == 2
            await trio.sleep(60 * 0.1 + 0.2)  # early: past 66 s
            stats = supervisor.statistics()
            assert (stats.live_actors, stats.retirements) == (1, 1)
            assert (await supervisor.get_event(late.id)).confirmed_count == 1
            assert store.loads[late.id] == 1
            await trio.sleep(30 + 6)  # late: past 66 s
            stats = supervisor.statistics()
            assert (stats.live_actors, stats.retirements) == (0, 2)


async def test_watched_actor_is_not_retired_until_its_streams_are_gone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    watched = {event.id}
    async with running(
        store, changes, idle_seconds=60, is_watched=lambda event_id: event_id in watched
    ) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS * 100):
            await register(supervisor, event.id)
            await trio.sleep(600)
            assert supervisor.statistics().live_actors == 1
            watched.clear()
            await trio.sleep(60 * 1.1 + 1)
            stats = supervisor.statistics()
            assert (stats.live_actors, stats.retirements) == (0, 1)
            assert store.loads[event.id] == 1


async def test_notice_to_a_full_mailbox_is_delivered_without_blocking() -> None:
    store, changes = FakeStore(), []
    event = store.add_event(max_attendees=100, version=1)
    async with running(store, changes, mailbox_size=2) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)
            gate = store.gate(event.id)
            results: dict[uuid.UUID, outcome.Outcome[Any]] = {}
            async with trio.open_nursery() as nursery:
                for rid in (uuid.uuid4() for _ in range(3)):  # one in hand, two queued
                    nursery.start_soon(registering, results, supervisor, event.id, rid)
                    await trio.testing.wait_all_tasks_blocked()
                blocked = uuid.uuid4()
                nursery.start_soon(registering, results, supervisor, event.id, blocked)
                await trio.testing.wait_all_tasks_blocked()
                # The mailbox is full; a notice neither waits nor is dropped.
                news = m.CountsChanged(EventCounts(event.id, 100, 50, 0, 50, utc_now()))
                supervisor.tell(event.id, news)
                assert not results
                gate.set()
            assert len(results) == 4
            assert all(value_of(r).status == "confirmed" for r in results.values())
            assert 50 in [ch.seq for ch in changes]  # the notice was handled
            assert (await supervisor.get_event(event.id)).version == 50


async def test_senders_waiting_for_room_get_in_in_the_order_they_came() -> None:
    mailbox = Mailbox(1)
    early = [uuid.uuid4() for _ in range(4)]
    late = [uuid.uuid4() for _ in range(3)]

    def request(rid: uuid.UUID) -> m.Register:
        return m.Register(rid, uuid.uuid4(), False, m.Reply())

    with trio.fail_after(TIMEOUT_SECONDS):
        await mailbox.put(request(early[0]))
        async with trio.open_nursery() as nursery:
            for rid in early[1:]:
                nursery.start_soon(mailbox.put, request(rid))
                await trio.testing.wait_all_tasks_blocked()
            taken: list[m.Message] = []
            while len(taken) < len(early) + len(late):
                taken += mailbox.take(10)
                if len(taken) <= len(late):
                    # Comes while the sender let out has not put its message yet:
                    # it must not take that place, nor jump the queue.
                    nursery.start_soon(mailbox.put, request(late[len(taken) - 1]))
                await trio.testing.wait_all_tasks_blocked()
                assert len(mailbox) == 1 or len(taken) == len(early) + len(late)
        assert [msg.registration_id for msg in taken] == early + late  # type: ignore[union-attr]


async def test_closing_a_mailbox_turns_away_its_waiting_senders() -> None:
    mailbox = Mailbox(1)
    first = m.Register(uuid.uuid4(), uuid.uuid4(), False, m.Reply())
    refused: list[BaseException] = []

    async def send() -> None:
        try:
            await mailbox.put(m.Register(uuid.uuid4(), uuid.uuid4(), False, m.Reply()))
        except MailboxClosed as exc:
            refused.append(exc)

    with trio.fail_after(TIMEOUT_SECONDS):
        await mailbox.put(first)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            await trio.testing.wait_all_tasks_blocked()
            assert mailbox.close() == [first]
        assert len(refused) == 1
        with pytest.raises(MailboxClosed):
            await mailbox.put(first)


async def test_supervisor_tasks_do_not_carry_the_askers_context() -> None:
    """An actor's task and a hydration run in the supervisor's context.

    Whatever keeps a task's context (the database adapter's asyncio timers
    do, for minutes) must not keep the request that happened to ask.
    """
    store, changes = FakeStore(), []
    event = store.add_event()
    seen: list[object] = []
    load, submit = store.load_event, store.submit

    async def load_noting(event_id: uuid.UUID) -> Event | None:
        seen.append(_ASKER.get(None))
        return await load(event_id)

    async def submit_noting(command: WriteCommand[Any]) -> Any:
        seen.append(_ASKER.get(None))
        return await submit(command)

    store.load_event = load_noting  # type: ignore[method-assign]
    store.submit = submit_noting  # type: ignore[method-assign]
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            _ASKER.set("a request")
            await register(supervisor, event.id)
            assert seen == [None, None]


_ASKER: contextvars.ContextVar[str] = contextvars.ContextVar("asker")


def test_an_event_at_new_counts_encodes_its_own_json() -> None:
    """at_counts copies the fields; the old version's cached JSON stays with the old event."""
    store = FakeStore()
    old = store.add_event(version=5)
    old_json = old.json_bytes
    counts = EventCounts(old.id, old.max_attendees + 1, 1, 0, 6, utc_now())
    new = old.at_counts(counts)
    assert new == dataclasses.replace(
        old, max_attendees=old.max_attendees + 1, confirmed_count=1, version=6,
        updated_at=counts.updated_at,
    )
    assert old.json_bytes is old_json
    assert old.version == 5
    assert new.json_bytes == Event.from_json(new.to_json()).json_bytes != old_json
    assert b'"version":6' in new.json_bytes
    assert b'"registeredCount":1' in new.json_bytes


# --- replies -------------------------------------------------------------------


def test_a_settled_reply_lets_go_of_its_callback() -> None:
    """What a callback holds is freed by reference counting once the reply is settled.

    A turn without a task holds its command, whose reply holds the callback,
    which holds the turn: kept, that cycle left every turn (its messages,
    replies and results) to the cycle collector, which then cost a spread
    registration more CPU than the actor layer itself.
    """

    class Turn:
        def __init__(self) -> None:
            self.reply: m.Reply[int] = m.Reply()
            self.answers: list[outcome.Outcome[int]] = []

        def settled(self, result: outcome.Outcome[int]) -> None:
            self.answers.append(result)

    gc.disable()
    try:
        turn = Turn()
        turn.reply.then(turn.settled)
        turn.reply.set(7)
        assert turn.answers == [outcome.Value(7)]
        gone = weakref.ref(turn)
        del turn
        assert gone() is None
    finally:
        gc.enable()
