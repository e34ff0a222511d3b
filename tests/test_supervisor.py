"""The Supervisor: hydration, supervision and restarts, retirement, backpressure.

The rules of the actors' tests are ``tests.support``'s, above ``FakeStore``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import uuid
from typing import Any

import outcome
import pytest
import trio
import trio.testing

from eventd.actors import messages as m
from eventd.actors.supervisor import ActorCrashed
from eventd.errors import NotFound
from eventd.model import Event, EventCounts, utc_now
from eventd.storage.database import QueryFailed
from eventd.storage.writer import WriteCommand
from tests.support import (
    TIMEOUT_SECONDS,
    FakeStore,
    error_of,
    register,
    registering,
    running,
    value_of,
)


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
                # Another actor is in the middle of a write (an edit, in its own
                # task) when the crash happens.
                gate = store.gate(busy.id)
                in_flight = uuid.uuid4()

                async def edit() -> None:
                    results[in_flight] = await outcome.acapture(
                        supervisor.ask, busy.id, lambda reply: m.UpdateEvent({"name": "B"}, reply)
                    )

                nursery.start_soon(edit)
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

            assert value_of(results[in_flight]).name == "B"

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
            assert (await supervisor.get_event(busy.id)).confirmed_count == 1
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
