"""An EventActor's own rules: its fast path, deletion, news from outside, ordering.

The rules of the actors' tests are ``tests.support``'s, above ``FakeStore``.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import outcome
import pytest
import trio
import trio.testing

from eventd.actors import messages as m
from eventd.actors.event_actor import GAP_WAIT_SECONDS
from eventd.errors import AlreadyRegistered, EventFull, EventStarted, NotFound
from eventd.model import EventCounts, utc_now
from eventd.storage import commands as c
from tests.support import (
    TIMEOUT_SECONDS,
    FakeStore,
    cancel,
    capture,
    delete,
    error_of,
    peers_into,
    register,
    registering,
    remote_change,
    running,
    value_of,
)


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


async def test_dormant_actor_releases_a_held_change_after_the_gap_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, changes, shared = FakeStore(), [], []
    event = store.add_event(version=1)
    async with running(store, changes, peers=peers_into(shared)) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)
            # Version 3 arrives before version 2: it is held, and the task stays for it.
            supervisor.deliver_remote(remote_change(event, 3))
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
    async with running(store, changes, peers=peers_into(shared)) as supervisor:
        with trio.fail_after(TIMEOUT_SECONDS):
            await supervisor.get_event(event.id)
            supervisor.deliver_remote(remote_change(event, 3))
            await trio.sleep(GAP_WAIT_SECONDS / 2)
            supervisor.deliver_remote(remote_change(event, 2))
            await trio.testing.wait_all_tasks_blocked()
            assert [ch.seq for ch in changes] == [2, 3]
            assert supervisor.statistics().awake_actors == 0
            await trio.sleep(GAP_WAIT_SECONDS * 2)
            assert [ch.seq for ch in changes] == [2, 3]


# --- hold and offer expiry -----------------------------------------------------------


async def test_the_actor_s_timer_sends_it_an_expire_at_its_next_expiry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore()
    event = store.add_event()
    # Its holds: the next one expires in 5 s, as the database says on hydration.
    store.events[event.id] = dataclasses.replace(
        event, next_expiry=utc_now() + timedelta(seconds=5))
    changes: list[Any] = []
    async with running(store, changes) as supervisor:
        start = trio.current_time()
        await supervisor.watch(event.id)  # hydrated: its timer is armed
        assert list(supervisor.expiries.armed) == [event.id]
        assert supervisor.expiries.armed[event.id] - start == pytest.approx(5, abs=0.1)
        await trio.sleep(4.5)
        assert _expire_ops(store, event.id) == 0
        later = utc_now() + timedelta(seconds=30)
        store.next_expiries[event.id] = later  # the database: another hold, later
        await trio.sleep(1)
        assert _expire_ops(store, event.id) == 1
        # Re-armed from the answer, for the next one.
        assert supervisor.expiries.armed[event.id] - trio.current_time() == pytest.approx(
            30, abs=1)
        store.next_expiries[event.id] = None
        await trio.sleep(31)
        assert _expire_ops(store, event.id) == 2
        assert supervisor.expiries.armed == {}


def _expire_ops(store: FakeStore, event_id: uuid.UUID) -> int:
    return sum(op.kind == "expire" for part in store.submitted_turns(event_id) for op in part.ops)
