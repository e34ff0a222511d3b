"""The registration flow's rules, held to a plain-Python model by hypothesis.

A ``RuleBasedStateMachine`` registers (plainly, with a hold, onto the
waitlist), confirms, cancels, lets holds and offers expire (their deadline
moved into the past, then the expire operation the timer sends), raises and
lowers the capacity and deletes attendees, on one event whose freed seats are
offered — all through the database functions the writer calls. After every
step each registration's status and the event's counts must be the model's.

The model is the contract in a few lines: held, offered and confirmed take a
seat; a freed seat goes to the head of the waitlist as an offer; an attendee
has one active registration per event; cancelled and expired rows stay.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import trio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventd.storage.database import open_database
from eventd.storage.migrations import apply_migrations

PEOPLE = 6
ACTIVE = ("held", "offered", "confirmed", "waitlisted")


async def _migrate(url: str) -> None:
    async with open_database(url, pool_size=1, timeout_seconds=30) as db:
        await apply_migrations(db)


class Flow(RuleBasedStateMachine):
    url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.sql_connect()
        self.event = uuid.uuid4()
        self.people = [uuid.uuid4() for _ in range(PEOPLE)]
        starts = datetime.now(UTC) + timedelta(days=3)
        self.q("INSERT INTO events (id, name, starts_at, duration_minutes, ends_at, location,"
               " max_attendees, offer_minutes) VALUES ($1, 'Model', $2, 60, $3, $4, 2, 30)",
               self.event, starts, starts + timedelta(hours=1), f"Room {self.event}")
        self.q("INSERT INTO attendees (id, name, email) SELECT id, 'P',"
               " id::text || '@example.org' FROM unnest($1::uuid[]) AS id", self.people)
        # The model.
        self.capacity = 2
        self.status: dict[uuid.UUID, str] = {}
        self.owner: dict[uuid.UUID, uuid.UUID] = {}
        self.waitlist: list[uuid.UUID] = []
        self.deleted: set[uuid.UUID] = set()

    def sql_connect(self) -> asyncpg.Connection:
        return self.loop.run_until_complete(asyncpg.connect(self.url, timeout=10))

    def q(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return self.loop.run_until_complete(self.conn.fetch(sql, *args))

    def teardown(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()

    def op(self, kind: str, rid: uuid.UUID | None = None, person: uuid.UUID | None = None,
           waitlist: bool = False, hold: bool = False) -> str:
        rows = self.q("SELECT outcome, registration_id FROM eventd_registration_json($1)",
                      json.dumps([[kind, rid, self.event, person, waitlist, hold, False]],
                                 default=str))
        self.last_id = rows[0]["registration_id"]
        return str(rows[0]["outcome"])

    # --- the model's rules ---

    def taken(self) -> int:
        return sum(1 for s in self.status.values() if s in ("held", "offered", "confirmed"))

    def fill(self) -> None:
        while self.waitlist and self.taken() < self.capacity:
            head = self.waitlist.pop(0)
            self.status[head] = "offered"

    def leave(self, rid: uuid.UUID, status: str) -> None:
        if self.status[rid] == "waitlisted":
            self.waitlist.remove(rid)
        self.status[rid] = status

    def active_of(self, person: uuid.UUID) -> uuid.UUID | None:
        found = [r for r, p in self.owner.items()
                 if p == person and self.status.get(r) in ACTIVE]
        return found[0] if found else None

    # --- rules ---

    @rule(person=st.integers(0, PEOPLE - 1), waitlist=st.booleans(), hold=st.booleans())
    def register(self, person: int, waitlist: bool, hold: bool) -> None:
        who = self.people[person]
        outcome = self.op("register", None, who, waitlist, hold)
        if who in self.deleted:
            expected = "attendee_not_found"
        elif self.active_of(who) is not None:
            expected = "already_registered"
        elif self.taken() < self.capacity:
            expected = "held" if hold else "confirmed"
        elif waitlist:
            expected = "waitlisted"
        else:
            expected = "event_full"
        assert outcome == expected
        if expected in ACTIVE:
            self.status[self.last_id] = expected
            self.owner[self.last_id] = who
            if expected == "waitlisted":
                self.waitlist.append(self.last_id)

    def some(self, data: st.DataObject) -> uuid.UUID:
        return data.draw(st.sampled_from(list(self.status)))  # in registration order

    @precondition(lambda self: self.status)
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        rid = self.some(data)
        outcome = self.op("confirm", rid)
        before = self.status[rid]
        expected = {"held": "confirmed_hold", "offered": "confirmed_offer",
                    "confirmed": "already_confirmed", "expired": "hold_expired"}.get(
                        before, "not_held")
        assert outcome == expected
        if before in ("held", "offered"):
            self.status[rid] = "confirmed"

    @precondition(lambda self: self.status)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        rid = self.some(data)
        outcome = self.op("cancel", rid)
        if self.status[rid] in ACTIVE:
            assert outcome == "cancelled"
            self.leave(rid, "cancelled")
            self.fill()
        else:
            assert outcome == "unchanged"

    @precondition(lambda self: any(s in ("held", "offered") for s in self.status.values()))
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        seated = [r for r, s in self.status.items() if s in ("held", "offered")]
        due = data.draw(st.lists(st.sampled_from(seated), min_size=1, unique=True))
        # Time passes for these: their deadline is behind the database's clock.
        self.q("UPDATE registrations SET expires_at = now() - interval '1 second'"
               " WHERE id = ANY($1)", due)
        assert self.op("expire") == "expired"
        for rid in due:
            self.status[rid] = "expired"
        self.fill()

    @rule(capacity=st.integers(1, 5))
    def set_capacity(self, capacity: int) -> None:
        # What the writer's UpdateEvent does for a new capacity, under the row lock.
        self.q("BEGIN")
        try:
            row = self.q("SELECT confirmed_count + held_count AS taken FROM events"
                         " WHERE id = $1 FOR UPDATE", self.event)[0]
            if capacity < row["taken"]:
                assert capacity < self.taken()
                return
            self.q("UPDATE events SET max_attendees = $2, version = version + 1 WHERE id = $1",
                   self.event, capacity)
            self.q("SELECT eventd_fill_seats($1)", self.event)
        finally:
            self.q("COMMIT")
        self.capacity = capacity
        self.fill()

    @rule(person=st.integers(0, PEOPLE - 1))
    def delete_attendee(self, person: int) -> None:
        who = self.people[person]
        rows = self.q("SELECT existed FROM eventd_delete_attendee($1)", who)
        existed = not (rows and not rows[0]["existed"])  # no row: nothing to cancel
        assert existed == (who not in self.deleted)
        self.deleted.add(who)
        active = self.active_of(who)
        if active is not None:
            self.leave(active, "cancelled")
            self.fill()
        for rid in [r for r, p in self.owner.items() if p == who]:
            del self.status[rid], self.owner[rid]

    # --- the check ---

    @invariant()
    def database_is_the_model(self) -> None:
        rows = self.q("SELECT id, status FROM registrations WHERE event_id = $1", self.event)
        assert {r["id"]: r["status"] for r in rows} == self.status
        queue = self.q("SELECT id FROM registrations WHERE event_id = $1"
                       " AND status = 'waitlisted' ORDER BY seq", self.event)
        assert [r["id"] for r in queue] == self.waitlist
        event = self.q("SELECT max_attendees, confirmed_count, held_count, waitlist_count"
                       " FROM events WHERE id = $1", self.event)[0]
        counted = {s: sum(1 for v in self.status.values() if v == s) for s in ACTIVE}
        assert tuple(event) == (self.capacity, counted["confirmed"],
                                counted["held"] + counted["offered"], counted["waitlisted"])


def test_the_flow_follows_its_model(fresh_database_url: str) -> None:
    trio.run(_migrate, fresh_database_url)
    Flow.url = fresh_database_url
    case = Flow.TestCase
    case.settings = settings(max_examples=60, stateful_step_count=25, deadline=None,
                             derandomize=bool(os.environ.get("CI")))
    case().runTest()
