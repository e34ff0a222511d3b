"""The Mailbox: bounded for requests, unbounded for notices, fair to waiting senders.

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
from eventd.actors.mailbox import Mailbox, MailboxClosed
from eventd.model import EventCounts, utc_now
from tests.support import (
    TIMEOUT_SECONDS,
    FakeStore,
    registering,
    running,
    value_of,
)


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
                taken += mailbox.take_registrations(10)
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
