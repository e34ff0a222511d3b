"""Reminders: timers on trio's clock (MockClock here), and exactly-once delivery end to end.

Timer tests run no daemon and no database: time is trio's, jumped by
``autojump_clock``; the wall clock is a fixed ``now``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trio

from eventd.email.reminders import RETRY_SECONDS, Reminders
from eventd.errors import Unavailable
from eventd.model import Event
from eventd.realtime.changes import Change
from tests.conftest import create_event, mail_to, person, read_mail, register
from tests.support import DaemonProcess, run_sql

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
BEFORE = timedelta(hours=24)


def event(starts_at: datetime, confirmed: int = 1) -> Event:
    return Event(uuid.uuid4(), "E", "", starts_at, 60, "Hall", 10, confirmed, 0, 2, NOW, NOW)


class Timers:
    def __init__(self) -> None:
        self.fired: list[tuple[uuid.UUID, float]] = []
        self.failures = 0
        self.reminders = Reminders(self.fire, BEFORE, now=lambda: NOW)

    async def fire(self, event_id: uuid.UUID) -> int:
        if self.failures:
            self.failures -= 1
            raise Unavailable("database away")
        self.fired.append((event_id, trio.current_time()))
        return 1


async def run_for(timers: Timers, seconds: float, *setup: object) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.reminders.run)
        for step in setup:
            step()  # type: ignore[operator]
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()


async def test_fires_exactly_at_the_moment(autojump_clock: trio.testing.MockClock):
    timers, e = Timers(), event(NOW + timedelta(hours=30))
    start = trio.current_time()
    await run_for(timers, 10 * 3600, lambda: timers.reminders.arm(e.id, e.starts_at))
    assert timers.fired == [(e.id, start + 6 * 3600)]


async def test_a_new_date_rearms_and_the_old_moment_passes_silently(
    autojump_clock: trio.testing.MockClock,
):
    timers, e = Timers(), event(NOW + timedelta(hours=30))
    moved = Event(**{**e.__dict__, "starts_at": NOW + timedelta(hours=40), "version": 3})
    start = trio.current_time()
    await run_for(timers, 20 * 3600,
                  lambda: timers.reminders.on_change(Change("eventCapacityUpdate", e, 2, NOW)),
                  lambda: timers.reminders.on_change(Change("eventUpdated", moved, 3, NOW)))
    assert timers.fired == [(e.id, start + 16 * 3600)]


async def test_deletion_drops_the_timer(autojump_clock: trio.testing.MockClock):
    timers, e = Timers(), event(NOW + timedelta(hours=30))
    await run_for(timers, 10 * 3600,
                  lambda: timers.reminders.arm(e.id, e.starts_at),
                  lambda: timers.reminders.on_change(Change("eventDeleted", e, 3, NOW)))
    assert timers.fired == []
    assert timers.reminders.armed == {}


async def test_a_moment_missed_while_down_fires_at_once_on_catch_up(
    autojump_clock: trio.testing.MockClock,
):
    timers = Timers()
    missed, late = event(NOW + timedelta(hours=3)), event(NOW + timedelta(hours=5))
    start = trio.current_time()
    await run_for(timers, 60,
                  lambda: timers.reminders.arm(missed.id, missed.starts_at, catch_up=True),
                  # Not catching up: a registration confirmed after the moment gets none.
                  lambda: timers.reminders.arm(late.id, late.starts_at))
    assert timers.fired == [(missed.id, start)]


async def test_events_without_confirmed_registrations_arm_nothing(
    autojump_clock: trio.testing.MockClock,
):
    timers, e = Timers(), event(NOW + timedelta(hours=30), confirmed=0)
    await run_for(timers, 10 * 3600,
                  lambda: timers.reminders.on_change(Change("newEvent", e, 1, NOW)))
    assert timers.fired == []


async def test_a_failed_firing_is_retried(autojump_clock: trio.testing.MockClock):
    timers, e = Timers(), event(NOW + timedelta(hours=25))
    timers.failures = 2
    start = trio.current_time()
    await run_for(timers, 2 * 3600, lambda: timers.reminders.arm(e.id, e.starts_at))
    assert timers.fired == [(e.id, start + 3600 + 2 * RETRY_SECONDS)]


# --- end to end ------------------------------------------------------------------


def reminders_to(mailbox: Path, recipient: str) -> int:
    return sum(1 for m in read_mail(mailbox)
               if m["To"] == recipient and m["Subject"].startswith("Reminder:"))


@pytest.mark.slow
async def test_reminders_go_once_and_not_to_late_registrations(
    fresh_database_url: str, workdir: Path
):
    # The moment is 2.5 s after the start of the test: a real wait, bounded.
    daemon = DaemonProcess(fresh_database_url, workdir,
                           reminders={"before_hours": 3 / 3600}).start()
    mailbox = workdir / "var" / "mail"
    try:
        async with httpx.AsyncClient(base_url=daemon.url) as client:
            starts = datetime.now(UTC) + timedelta(seconds=5.5)
            e = await create_event(client, name="Soon", maxAttendees=5,
                                   date=starts.isoformat().replace("+00:00", "Z"))
            early, late = await person(client), await person(client)
            assert (await register(client, e["id"], early["id"])).status_code == 201
            reminder = await mail_to(mailbox, early["email"], "Reminder: Soon")
            assert "Soon" in reminder.get_body(("plain",)).get_content()
            assert (await register(client, e["id"], late["id"])).status_code == 201
            await trio.sleep(1)
        assert reminders_to(mailbox, early["email"]) == 1
        assert reminders_to(mailbox, late["email"]) == 0
    finally:
        assert daemon.stop() == 0, daemon.log()


@pytest.mark.slow
async def test_a_reminder_due_while_the_daemon_was_down_is_sent_on_start_once(
    fresh_database_url: str, workdir: Path
):
    daemon = DaemonProcess(fresh_database_url, workdir).start()  # 24 h before
    mailbox = workdir / "var" / "mail"
    async with httpx.AsyncClient(base_url=daemon.url) as client:
        e = await create_event(client, name="Moved Up", maxAttendees=5)
        p = await person(client)
        assert (await register(client, e["id"], p["id"])).status_code == 201
    assert daemon.stop() == 0, daemon.log()
    # As if it had been down for days: registered long ago, and the event now
    # less than 24 hours away, so its reminder moment passed during the downtime.
    await trio.to_thread.run_sync(lambda: run_sql(
        fresh_database_url, "UPDATE registrations SET confirmed_at = now() - interval '3 days'"
        " WHERE event_id = $1", uuid.UUID(e["id"])))
    await trio.to_thread.run_sync(lambda: run_sql(
        fresh_database_url, "UPDATE events SET starts_at = now() + interval '2 hours',"
        " ends_at = now() + interval '3 hours' WHERE id = $1", uuid.UUID(e["id"])))
    for _ in range(2):  # started twice: still one reminder
        daemon = DaemonProcess(fresh_database_url, workdir).start()
        try:
            await mail_to(mailbox, p["email"], "Reminder: Moved Up")
        finally:
            assert daemon.stop() == 0, daemon.log()
    assert reminders_to(mailbox, p["email"]) == 1
