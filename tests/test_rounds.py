"""The registration path: actors' turns gathered in rounds, sent to the writer, answered.

The rules of the actors' tests are ``tests.support``'s, above ``FakeStore``.
"""

from __future__ import annotations

import uuid
from typing import Any

import outcome
import pytest
import trio
import trio.testing

from eventd.actors import messages as m
from eventd.actors.supervisor import Supervisor
from eventd.errors import AlreadyRegistered, EventFull, NotFound, Unavailable
from eventd.storage import commands as c
from eventd.storage.writer import WriteCommand
from tests.support import (
    TIMEOUT_SECONDS,
    FakeStore,
    cancel,
    counting_actor_tasks,
    error_of_or_none,
    register,
    registering,
    running,
    value_of,
)


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
                    for part in command.parts} == {k: set(v) for k, v in asked.items()}
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


async def test_a_round_is_sealed_before_the_writer_has_it() -> None:
    """The command the writer runs is a plain list of ops, fixed when it is offered:
    what reaches an actor's mailbox afterwards goes in the next round."""
    store, changes = FakeStore(), []
    event = store.add_event()
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)  # hydrate
            gate = store.gate(event.id)
            results: dict[uuid.UUID, outcome.Outcome[Any]] = {}
            first, later = uuid.uuid4(), uuid.uuid4()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(registering, results, supervisor, event.id, first)
                await trio.testing.wait_all_tasks_blocked()
                [offered] = store.commands
                assert isinstance(offered, c.RegistrationOps)
                nursery.start_soon(registering, results, supervisor, event.id, later)
                await trio.testing.wait_all_tasks_blocked()
                assert [op.registration_id for part in offered.parts for op in part.ops] == [first]
                gate.set()
            assert [value_of(results[rid]).status for rid in (first, later)] == ["confirmed"] * 2
            assert store.submitted_ids(event.id) == [first, later]
            assert len(store.commands) == 2


async def test_a_busy_event_s_requests_are_carried_in_order_until_it_is_free(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    store.locked.add(event.id)
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            results: dict[uuid.UUID, outcome.Outcome[Any]] = {}
            rids = [uuid.uuid4() for _ in range(3)]
            async with trio.open_nursery() as nursery:
                for rid in rids:
                    nursery.start_soon(registering, results, supervisor, event.id, rid)
                await trio.sleep(1)
                assert results == {}  # carried, round after round, unanswered
                assert len(store.commands) > 2
                store.locked.clear()
            assert [value_of(results[rid]).status for rid in rids] == ["confirmed"] * 3
            # Sent again in the order they first came in; each written once.
            sent = store.submitted_ids(event.id)
            first_seen = list(dict.fromkeys(sent))
            assert sorted(first_seen) == sorted(rids)
            assert sent[-3:] == first_seen
            assert (await supervisor.get_event(event.id)).confirmed_count == 3


async def test_a_request_carried_past_its_deadline_is_answered_unwritten(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, changes = FakeStore(), []
    event = store.add_event()
    store.locked.add(event.id)
    async with running(store, changes) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            deadline = trio.current_time() + 2
            with pytest.raises(Unavailable):
                await supervisor.ask(
                    event.id, lambda reply: m.Register(None, uuid.uuid4(), False, reply, deadline)
                )
            assert trio.current_time() >= deadline
            store.locked.clear()
            assert (await register(supervisor, event.id)).status == "confirmed"
            assert (await supervisor.get_event(event.id)).confirmed_count == 1
    assert len(changes) == 1
