"""The real-time fan-out in isolation: Change encoding, capacity warnings, Outbox, Hub.

Rules of this file: no sockets and no database. Events and changes are built
directly; every wait is bounded by ``trio.fail_after``; blocking is made
explicit with ``trio.testing.wait_all_tasks_blocked``.
"""

from __future__ import annotations

import gc
import json
import uuid
import weakref
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import trio
import trio.testing
import wsproto
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventd.model import Event, utc_now
from eventd.realtime.capacity import capacity_warning
from eventd.realtime.changes import Change
from eventd.realtime.frames import text_frame
from eventd.realtime.hub import Hub
from eventd.realtime.outbox import TRY_AGAIN_LATER, Closing, Outbox

TIMEOUT_SECONDS = 5
GOING_AWAY = 1001

EVENT_A = uuid.UUID(int=0xA)
EVENT_B = uuid.UUID(int=0xB)
EVENT_C = uuid.UUID(int=0xC)

CREATED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
STARTS = datetime(2027, 1, 1, 18, 0, tzinfo=UTC)
AT = datetime(2027, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)


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
        starts_at=STARTS,
        duration_minutes=90,
        location="Room 1",
        max_attendees=max_attendees,
        confirmed_count=confirmed,
        waitlist_count=waitlist,
        version=version,
        created_at=CREATED,
        updated_at=CREATED + timedelta(minutes=version),
    )


def capacity(event_id: uuid.UUID, seq: int, confirmed: int = 0, max_attendees: int = 100) -> Change:
    event = make_event(event_id, max_attendees=max_attendees, confirmed=confirmed, version=seq)
    return Change("eventCapacityUpdate", event, seq, AT)


def updated(event_id: uuid.UUID, seq: int) -> Change:
    return Change("eventUpdated", make_event(event_id, version=seq), seq, AT)


def decode(change: Change, ratio: float = 0.1) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(change.encode(ratio))
    return message


async def drain(outbox: Outbox) -> list[Change]:
    """Everything queued, in order; the queue is non-empty so no get may block."""
    taken: list[Change] = []
    with trio.fail_after(TIMEOUT_SECONDS):
        while len(outbox):
            taken.append(await outbox.get())
    return taken


async def expect_closing(outbox: Outbox) -> int:
    with trio.fail_after(TIMEOUT_SECONDS), pytest.raises(Closing) as info:
        await outbox.get()
    return info.value.code


# ---------------------------------------------------------------------------
# Change.encode


@pytest.mark.parametrize("kind", ["snapshot", "newEvent", "eventUpdated"])
def test_whole_event_messages_carry_event_json(kind: str) -> None:
    event = make_event(max_attendees=40, confirmed=37, waitlist=2, version=7)
    change = Change(kind, event, 7, AT)  # type: ignore[arg-type]

    message = decode(change)

    assert set(message) == {"type", "eventId", "seq", "at", "data"}
    assert message["type"] == kind
    assert message["eventId"] == str(EVENT_A)
    assert message["seq"] == 7
    assert message["at"] == "2027-01-01T10:00:00.123Z"
    assert message["data"] == event.to_json()
    assert message["data"]["registeredCount"] == 37
    assert message["data"]["availableSpots"] == 3


def test_event_deleted_carries_only_the_id() -> None:
    event = make_event(EVENT_B, version=4)
    message = decode(Change("eventDeleted", event, 5, AT))

    assert message == {
        "type": "eventDeleted",
        "eventId": str(EVENT_B),
        "seq": 5,
        "at": "2027-01-01T10:00:00.123Z",
        "data": {"id": str(EVENT_B)},
    }


def test_capacity_update_carries_exactly_the_counts() -> None:
    event = make_event(max_attendees=100, confirmed=98, waitlist=3, version=42)
    message = decode(Change("eventCapacityUpdate", event, 42, AT), 0.1)

    assert message == {
        "type": "eventCapacityUpdate",
        "eventId": str(EVENT_A),
        "seq": 42,
        "at": "2027-01-01T10:00:00.123Z",
        "data": {
            "maxAttendees": 100,
            "registeredCount": 98,
            "availableSpots": 2,
            "waitlistCount": 3,
            "warning": "almostFull",
        },
    }


@pytest.mark.parametrize(
    ("confirmed", "warning"), [(100, "full"), (90, "almostFull"), (89, None), (0, None)]
)
def test_capacity_update_warning_follows_the_counts(confirmed: int, warning: str | None) -> None:
    message = decode(capacity(EVENT_A, 3, confirmed=confirmed), 0.1)
    assert message["data"]["warning"] == warning
    assert message["data"]["availableSpots"] == 100 - confirmed


def test_seq_is_the_changes_not_the_events_version() -> None:
    # The message's seq is what the change says, even when the event object lags.
    message = decode(Change("eventUpdated", make_event(version=3), 9, AT))
    assert message["seq"] == 9
    assert message["data"]["version"] == 3


def test_at_is_rendered_in_utc_with_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2027, 1, 1, 12, 0, 0, 123456, tzinfo=plus_two)
    assert decode(Change("eventUpdated", make_event(), 1, local))["at"] == (
        "2027-01-01T10:00:00.123Z"
    )
    whole_second = datetime(2027, 1, 1, 7, 0, 0, tzinfo=timezone(timedelta(hours=-3)))
    assert decode(Change("eventUpdated", make_event(), 1, whole_second))["at"] == (
        "2027-01-01T10:00:00Z"
    )


def test_snapshot_constructor() -> None:
    event = make_event(version=12)
    before = utc_now()
    change = Change.snapshot(event)
    after = utc_now()

    assert change.type == "snapshot"
    assert change.event is event
    assert change.seq == 12
    assert before <= change.at <= after
    message = decode(change)
    assert message["type"] == "snapshot"
    assert message["seq"] == 12
    assert message["at"].endswith("Z")
    assert message["data"] == event.to_json()


def test_encode_is_done_once_per_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    renders: list[float] = []
    render = Change._render

    def counting_render(self: Change, ratio: float) -> str:
        renders.append(ratio)
        return render(self, ratio)

    monkeypatch.setattr(Change, "_render", counting_render)
    # 15 of 100 spots: no warning at 0.1, almostFull at 0.2.
    change = capacity(EVENT_A, 5, confirmed=85)

    first = change.encode(0.1)
    second = change.encode(0.1)
    assert second is first
    assert renders == [0.1]
    assert json.loads(first)["data"]["warning"] is None

    other = change.encode(0.2)
    assert renders == [0.1, 0.2]
    assert other is not first
    assert json.loads(other)["data"]["warning"] == "almostFull"
    assert change.encode(0.2) is other
    assert renders == [0.1, 0.2]


def test_encoding_does_not_change_the_change() -> None:
    change = capacity(EVENT_A, 5, confirmed=85)
    twin = capacity(EVENT_A, 5, confirmed=85)
    change.encode(0.1)
    assert change == twin
    assert hash(change) == hash(twin)


# ---------------------------------------------------------------------------
# Change.frame: the bytes written to every connection


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


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
def test_text_frame_lengths_at_every_boundary(length: int) -> None:
    text = "é" * (length // 2) + "x" * (length % 2)  # multi-byte: the length is in bytes
    assert client_messages(text_frame(text)) == [text]


def test_frame_is_the_encoded_message_framed_once_per_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renders: list[float] = []
    render = Change._render

    def counting_render(self: Change, ratio: float) -> str:
        renders.append(ratio)
        return render(self, ratio)

    monkeypatch.setattr(Change, "_render", counting_render)
    change = capacity(EVENT_A, 5, confirmed=85)
    frame = change.frame(0.1)
    assert change.frame(0.1) is frame
    assert client_messages(frame) == [change.encode(0.1)]
    other = change.frame(0.2)
    assert client_messages(other) == [change.encode(0.2)]
    assert json.loads(client_messages(other)[0])["data"]["warning"] == "almostFull"
    assert renders == [0.1, 0.2]


def test_frames_of_many_changes_joined_read_as_separate_messages() -> None:
    changes = [updated(EVENT_A, 1), capacity(EVENT_A, 2, confirmed=1), capacity(EVENT_B, 3)]
    joined = b"".join(change.frame(0.1) for change in changes)
    assert client_messages(joined) == [change.encode(0.1) for change in changes]


# ---------------------------------------------------------------------------
# capacity_warning


@pytest.mark.parametrize(
    ("max_attendees", "confirmed", "ratio", "expected"),
    [
        (100, 100, 0.1, "full"),
        (100, 101, 0.1, "full"),  # overbooked after maxAttendees shrank: still full
        (0, 0, 0.1, "full"),
        (100, 90, 0.1, "almostFull"),  # 10 spots ≤ 10
        (100, 89, 0.1, None),  # 11 spots > 10
        (100, 99, 0.1, "almostFull"),
        (5, 4, 0.1, "almostFull"),  # 1 spot: 0.5 rounds up to the one-spot minimum
        (5, 3, 0.1, None),  # 2 spots
        (100, 99, 0.0, "almostFull"),  # ratio 0: the last spot still warns
        (100, 98, 0.0, None),
        (100, 0, 0.1, None),
        (30, 27, 0.1, "almostFull"),  # 3 ≤ 0.1 × 30 (3.0000000000000004 in floats)
        (30, 26, 0.1, None),
        (100, 50, 0.5, "almostFull"),
        (100, 49, 0.5, None),
        (10, 0, 1.0, "almostFull"),  # every spot is within the ratio
    ],
)
def test_capacity_warning(
    max_attendees: int, confirmed: int, ratio: float, expected: str | None
) -> None:
    event = make_event(max_attendees=max_attendees, confirmed=confirmed)
    assert capacity_warning(event, ratio) == expected


@pytest.mark.parametrize(
    ("max_attendees", "ratio", "spots"),
    [(100, 0.29, 29), (100, 0.57, 57), (200, 0.29, 58)],
)
def test_capacity_warning_at_exactly_the_ratio(
    max_attendees: int, ratio: float, spots: int
) -> None:
    # availableSpots == ratio × maxAttendees exactly (in decimal, as configured):
    # the contract says ≤, so this warns, whatever binary floats make of the product.
    event = make_event(max_attendees=max_attendees, confirmed=max_attendees - spots)
    assert capacity_warning(event, ratio) == "almostFull"


# ---------------------------------------------------------------------------
# Outbox


async def test_outbox_is_fifo() -> None:
    outbox = Outbox(10)
    changes = [
        capacity(EVENT_A, 1),
        updated(EVENT_B, 1),
        Change("newEvent", make_event(EVENT_C), 1, AT),
        capacity(EVENT_B, 2),
        Change("eventDeleted", make_event(EVENT_A), 2, AT),
    ]
    for change in changes:
        outbox.put_nowait(change)
    taken = await drain(outbox)
    assert len(taken) == len(changes)
    assert all(got is sent for got, sent in zip(taken, changes, strict=True))


async def test_client_that_keeps_up_gets_every_capacity_update() -> None:
    outbox = Outbox(4)
    changes = [capacity(EVENT_A, seq, confirmed=seq) for seq in range(1, 5)]
    for change in changes:  # exactly `size` queued: nothing collapses
        outbox.put_nowait(change)
    assert len(outbox) == 4
    assert outbox.collapsed == 0
    assert [c.seq for c in await drain(outbox)] == [1, 2, 3, 4]
    assert not outbox.closed


async def test_client_that_keeps_up_at_the_bound_loses_nothing() -> None:
    # The queue hovers at its bound for a long time: still no collapsing.
    outbox = Outbox(3)
    taken: list[Change] = []
    seq = 0
    with trio.fail_after(TIMEOUT_SECONDS):
        for _ in range(3):
            seq += 1
            outbox.put_nowait(capacity(EVENT_A, seq, confirmed=seq % 100))
        for _ in range(50):
            taken.append(await outbox.get())
            seq += 1
            outbox.put_nowait(capacity(EVENT_A, seq, confirmed=seq % 100))
            assert len(outbox) == 3
    taken += await drain(outbox)
    assert [c.seq for c in taken] == list(range(1, seq + 1))
    assert outbox.collapsed == 0


async def test_size_one_outbox_read_promptly_gets_everything() -> None:
    outbox = Outbox(1)
    with trio.fail_after(TIMEOUT_SECONDS):
        for seq in range(1, 21):
            change = capacity(EVENT_A, seq)
            outbox.put_nowait(change)
            assert await outbox.get() is change
    assert outbox.collapsed == 0


async def test_overflow_collapses_capacity_updates_into_the_newest() -> None:
    outbox = Outbox(3)
    a1, a2, a3 = (capacity(EVENT_A, seq, confirmed=seq) for seq in (1, 2, 3))
    b1 = updated(EVENT_B, 1)
    for change in (a1, b1, a2):
        outbox.put_nowait(change)
    assert outbox.collapsed == 0
    outbox.put_nowait(a3)  # 4 > 3: A's capacity updates collapse into a3

    assert outbox.collapsed == 2
    assert len(outbox) == 2
    assert not outbox.closed
    taken = await drain(outbox)
    assert taken[0] is b1
    assert taken[1] is a3


async def test_collapsed_newest_keeps_seq_rising() -> None:
    # The older capacity updates vanish from before the eventUpdated; the newest
    # stays after it, so the client sees 2 then 4 — never 4 then 2.
    outbox = Outbox(3)
    for change in (capacity(EVENT_A, 1), updated(EVENT_A, 2), capacity(EVENT_A, 3)):
        outbox.put_nowait(change)
    outbox.put_nowait(capacity(EVENT_A, 4))
    taken = await drain(outbox)
    assert [(c.type, c.seq) for c in taken] == [("eventUpdated", 2), ("eventCapacityUpdate", 4)]
    assert outbox.collapsed == 2


async def test_capacity_updates_of_different_events_do_not_collapse_together() -> None:
    outbox = Outbox(3)
    a1, b1, a2 = capacity(EVENT_A, 1), capacity(EVENT_B, 1), capacity(EVENT_A, 2)
    b2 = capacity(EVENT_B, 2, confirmed=7)
    for change in (a1, b1, a2, b2):
        outbox.put_nowait(change)
    assert outbox.collapsed == 2
    taken = await drain(outbox)
    assert [(c.event.id, c.seq) for c in taken] == [(EVENT_A, 2), (EVENT_B, 2)]
    assert taken[1] is b2


async def test_single_capacity_updates_of_many_events_survive_a_collapse() -> None:
    outbox = Outbox(4)
    singles = [capacity(EVENT_B, 1), capacity(EVENT_C, 1)]
    for change in (capacity(EVENT_A, 1), *singles, capacity(EVENT_A, 2), capacity(EVENT_A, 3)):
        outbox.put_nowait(change)
    taken = await drain(outbox)
    assert [(c.event.id, c.seq) for c in taken] == [(EVENT_B, 1), (EVENT_C, 1), (EVENT_A, 3)]
    assert outbox.collapsed == 2


@pytest.mark.parametrize("kind", ["eventUpdated", "newEvent", "snapshot", "eventDeleted"])
async def test_other_messages_are_never_collapsed(kind: str) -> None:
    outbox = Outbox(4)
    others = [Change(kind, make_event(version=seq), seq, AT) for seq in (1, 3, 5)]  # type: ignore[arg-type]
    sequence = [others[0], capacity(EVENT_A, 2), others[1], capacity(EVENT_A, 4), others[2]]
    for change in sequence:
        outbox.put_nowait(change)
    # 5 > 4: only the capacity update at seq 2 may go.
    assert outbox.collapsed == 1
    taken = await drain(outbox)
    assert [c.seq for c in taken] == [1, 3, 4, 5]
    assert [c for c in taken if c.type == kind] == others
    assert all(
        got is sent for got, sent in zip([t for t in taken if t.type == kind], others, strict=True)
    )


async def test_collapsed_counter_accumulates() -> None:
    outbox = Outbox(2)
    outbox.put_nowait(updated(EVENT_B, 1))
    for seq in range(1, 11):
        outbox.put_nowait(capacity(EVENT_A, seq))
        assert len(outbox) <= 2
    # A1 and B1 fill the queue; each of A2..A10 then pushes it past the bound
    # and collapses exactly one older update of A.
    assert outbox.collapsed == 9
    assert [c.seq for c in await drain(outbox)] == [1, 10]


async def test_overflow_that_cannot_collapse_closes_with_try_again_later() -> None:
    outbox = Outbox(2)
    outbox.put_nowait(updated(EVENT_A, 1))
    outbox.put_nowait(capacity(EVENT_A, 2))
    assert not outbox.closed
    outbox.put_nowait(updated(EVENT_A, 3))  # 3 > 2 and nothing to collapse

    assert outbox.closed
    assert len(outbox) == 0
    assert TRY_AGAIN_LATER == 1013
    assert await expect_closing(outbox) == TRY_AGAIN_LATER
    # Nothing queued before the close comes out, and later puts are ignored.
    outbox.put_nowait(updated(EVENT_A, 4))
    outbox.put_nowait(capacity(EVENT_A, 5))
    assert len(outbox) == 0
    assert outbox.closed
    assert await expect_closing(outbox) == TRY_AGAIN_LATER
    # The first close wins: a later 1001 does not rewrite the 1013.
    outbox.close_nowait(GOING_AWAY)
    assert await expect_closing(outbox) == TRY_AGAIN_LATER


async def test_overflow_after_partial_collapse_still_closes() -> None:
    outbox = Outbox(3)
    for change in (updated(EVENT_A, 1), capacity(EVENT_A, 2), updated(EVENT_B, 1)):
        outbox.put_nowait(change)
    outbox.put_nowait(capacity(EVENT_A, 3))  # collapses A's seq 2: back to 3
    assert not outbox.closed
    assert len(outbox) == 3
    outbox.put_nowait(updated(EVENT_B, 2))  # 4 non-collapsible: too slow
    assert outbox.closed
    assert len(outbox) == 0
    assert await expect_closing(outbox) == TRY_AGAIN_LATER


async def test_close_nowait_drops_queue_and_get_raises() -> None:
    outbox = Outbox(10)
    queued = [updated(EVENT_A, 1), capacity(EVENT_A, 2)]
    for change in queued:
        outbox.put_nowait(change)
    references = [weakref.ref(change) for change in queued]
    del queued, change
    outbox.close_nowait(GOING_AWAY)
    assert outbox.closed
    assert len(outbox) == 0
    gc.collect()
    assert [ref() for ref in references] == [None, None]  # dropped, not merely hidden
    assert await expect_closing(outbox) == GOING_AWAY
    assert await expect_closing(outbox) == GOING_AWAY


async def test_close_nowait_wakes_a_blocked_getter() -> None:
    outbox = Outbox(10)
    codes: list[int] = []

    async def getter() -> None:
        try:
            await outbox.get()
        except Closing as closing:
            codes.append(closing.code)

    with trio.fail_after(TIMEOUT_SECONDS):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(getter)
            await trio.testing.wait_all_tasks_blocked()
            assert codes == []
            outbox.close_nowait(GOING_AWAY)
    assert codes == [GOING_AWAY]


async def test_overflow_at_size_one() -> None:
    outbox = Outbox(1)
    outbox.put_nowait(updated(EVENT_A, 1))
    outbox.put_nowait(updated(EVENT_A, 2))
    assert outbox.closed
    assert await expect_closing(outbox) == TRY_AGAIN_LATER


async def test_get_blocks_while_empty_and_wakes_on_put() -> None:
    outbox = Outbox(10)
    received: list[Change] = []

    async def getter() -> None:
        received.append(await outbox.get())
        received.append(await outbox.get())

    first, second = updated(EVENT_A, 1), capacity(EVENT_A, 2)
    with trio.fail_after(TIMEOUT_SECONDS):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(getter)
            await trio.testing.wait_all_tasks_blocked()
            assert received == []
            outbox.put_nowait(first)
            await trio.testing.wait_all_tasks_blocked()
            assert received == [first]
            assert len(outbox) == 0
            outbox.put_nowait(second)
    assert received == [first, second]
    assert received[0] is first
    assert received[1] is second


async def test_len_is_the_live_count() -> None:
    outbox = Outbox(3)
    assert len(outbox) == 0
    outbox.put_nowait(capacity(EVENT_A, 1))
    outbox.put_nowait(updated(EVENT_B, 1))
    outbox.put_nowait(capacity(EVENT_A, 2))
    assert len(outbox) == 3
    outbox.put_nowait(capacity(EVENT_A, 3))  # collapse: A1, A2 go, A3 stays
    assert len(outbox) == 2
    with trio.fail_after(TIMEOUT_SECONDS):
        assert (await outbox.get()).event.id == EVENT_B
        assert len(outbox) == 1
        assert (await outbox.get()).seq == 3
    assert len(outbox) == 0


# --- property: random puts and gets against a bound ---------------------------

EVENTS = (EVENT_A, EVENT_B, EVENT_C)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("cap"), st.integers(0, len(EVENTS) - 1), st.integers(0, 100)),
        st.tuples(st.just("upd"), st.integers(0, len(EVENTS) - 1), st.just(0)),
        st.tuples(st.just("get"), st.just(0), st.just(0)),
    ),
    max_size=60,
)


class ReferenceOutbox:
    """The documented behaviour, written plainly."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.queue: list[Change] = []
        self.closed = False
        self.collapsed = 0

    def put(self, change: Change) -> None:
        if self.closed:
            return
        self.queue.append(change)
        if len(self.queue) > self.size:
            newest: dict[uuid.UUID, Change] = {}
            for queued in self.queue:
                if queued.type == "eventCapacityUpdate":
                    newest[queued.event.id] = queued
            kept = [
                q for q in self.queue if q.type != "eventCapacityUpdate" or newest[q.event.id] is q
            ]
            self.collapsed += len(self.queue) - len(kept)
            self.queue = kept
            if len(self.queue) > self.size:
                self.closed = True
                self.queue = []

    def get(self) -> Change:
        return self.queue.pop(0)


@settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(size=st.integers(1, 6), ops=operations)
async def test_outbox_property(size: int, ops: list[tuple[str, int, int]]) -> None:
    outbox = Outbox(size)
    reference = ReferenceOutbox(size)
    seqs = dict.fromkeys(EVENTS, 0)
    put: list[Change] = []
    delivered: list[Change] = []
    ever_above_size = False

    async def take() -> None:
        if reference.closed:
            assert await expect_closing(outbox) == TRY_AGAIN_LATER
            return
        if not reference.queue:
            assert len(outbox) == 0
            return
        with trio.fail_after(TIMEOUT_SECONDS):
            got = await outbox.get()
        assert got is reference.get()
        delivered.append(got)

    for kind, index, confirmed in ops:
        if kind == "get":
            await take()
        else:
            event_id = EVENTS[index]
            seqs[event_id] += 1
            change = (
                capacity(event_id, seqs[event_id], confirmed=confirmed)
                if kind == "cap"
                else updated(event_id, seqs[event_id])
            )
            if not reference.closed:
                put.append(change)
                if len(reference.queue) + 1 > size:
                    ever_above_size = True
            reference.put(change)
            outbox.put_nowait(change)
        assert len(outbox) == len(reference.queue)
        assert outbox.closed == reference.closed
        assert outbox.collapsed == reference.collapsed

    # Drain what is left.
    while reference.queue:
        await take()
    assert len(outbox) == 0

    # Per event, the seqs a client sees strictly increase.
    for event_id in EVENTS:
        event_seqs = [c.seq for c in delivered if c.event.id == event_id]
        assert event_seqs == sorted(set(event_seqs))

    if not ever_above_size:
        # Never past the bound: every message, in order, nothing collapsed.
        assert not outbox.closed
        assert outbox.collapsed == 0
        assert len(delivered) == len(put)
        assert all(got is sent for got, sent in zip(delivered, put, strict=True))

    if outbox.closed:
        assert await expect_closing(outbox) == TRY_AGAIN_LATER
    else:
        # Drained: the last state per event is the last one put, and only
        # capacity updates ever went missing.
        for event_id in EVENTS:
            sent = [c for c in put if c.event.id == event_id]
            got = [c for c in delivered if c.event.id == event_id]
            if sent:
                assert got[-1] is sent[-1]
            assert [c for c in got if c.type != "eventCapacityUpdate"] == [
                c for c in sent if c.type != "eventCapacityUpdate"
            ]
        assert len(delivered) + outbox.collapsed == len(put)


async def test_take_nowait_takes_everything_in_order_and_empties() -> None:
    outbox = Outbox(10)
    changes = [updated(EVENT_A, 1), capacity(EVENT_A, 2), capacity(EVENT_B, 1)]
    for change in changes:
        outbox.put_nowait(change)
    assert outbox.take_nowait() == changes
    assert len(outbox) == 0
    assert outbox.take_nowait() == []
    outbox.put_nowait(later := capacity(EVENT_A, 3))
    assert outbox.take_nowait() == [later]


def test_take_nowait_after_a_collapse_gets_the_survivors() -> None:
    outbox = Outbox(3)
    for change in (capacity(EVENT_A, 1), updated(EVENT_B, 1), capacity(EVENT_A, 2)):
        outbox.put_nowait(change)
    outbox.put_nowait(capacity(EVENT_A, 3))  # over the bound: A's collapse into the newest
    assert [(c.event.id, c.seq) for c in outbox.take_nowait()] == [(EVENT_B, 1), (EVENT_A, 3)]
    assert outbox.collapsed == 2


def test_take_nowait_raises_closing_once_closed() -> None:
    outbox = Outbox(10)
    outbox.put_nowait(updated(EVENT_A, 1))
    outbox.close_nowait(GOING_AWAY)
    with pytest.raises(Closing) as info:
        outbox.take_nowait()
    assert info.value.code == GOING_AWAY
    assert outbox.close_code == GOING_AWAY


def test_on_ready_fires_when_something_arrives_in_an_empty_outbox_and_on_close() -> None:
    calls: list[int] = []
    outbox = Outbox(10, on_ready=lambda: calls.append(len(outbox)))
    outbox.put_nowait(updated(EVENT_A, 1))
    outbox.put_nowait(updated(EVENT_A, 2))  # not empty before: whoever was told will take it
    assert calls == [1]
    outbox.take_nowait()
    outbox.put_nowait(updated(EVENT_A, 3))
    assert calls == [1, 1]
    outbox.close_nowait(GOING_AWAY)
    assert calls == [1, 1, 0]
    outbox.close_nowait(TRY_AGAIN_LATER)  # closing twice tells nobody twice
    outbox.put_nowait(updated(EVENT_A, 4))  # nor does a put after the close
    assert calls == [1, 1, 0]
    assert outbox.close_code == GOING_AWAY


def test_on_ready_fires_on_the_overflow_that_closes_with_try_again_later() -> None:
    closed_codes: list[int | None] = []
    outbox = Outbox(1, on_ready=lambda: closed_codes.append(outbox.close_code))
    outbox.put_nowait(updated(EVENT_A, 1))
    outbox.put_nowait(updated(EVENT_A, 2))
    assert closed_codes == [None, TRY_AGAIN_LATER]


# ---------------------------------------------------------------------------
# Hub


async def test_publish_reaches_global_and_that_events_subscribers_only() -> None:
    hub = Hub()
    everything, watcher_a, watcher_a2, watcher_b = (Outbox(16) for _ in range(4))
    change_a, change_b, change_c = updated(EVENT_A, 1), updated(EVENT_B, 1), updated(EVENT_C, 1)
    with (
        hub.subscribe(everything),
        hub.subscribe(watcher_a, EVENT_A),
        hub.subscribe(watcher_a2, EVENT_A),
        hub.subscribe(watcher_b, EVENT_B),
    ):
        hub.publish(change_a)
        hub.publish(change_b)
        hub.publish(change_c)  # nobody watches C: only the global stream hears it

        assert await drain(everything) == [change_a, change_b, change_c]
        assert await drain(watcher_a) == [change_a]
        assert await drain(watcher_a2) == [change_a]
        assert await drain(watcher_b) == [change_b]
    assert hub.statistics().dropped_slow_clients == 0


async def test_publish_hands_the_same_change_object_to_everyone() -> None:
    hub = Hub()
    first, second = Outbox(4), Outbox(4)
    change = capacity(EVENT_A, 1)
    with hub.subscribe(first), hub.subscribe(second, EVENT_A):
        hub.publish(change)
        assert (await first.get()) is change
        assert (await second.get()) is change


async def test_add_subscriber_delivers_until_unsubscribe() -> None:
    hub = Hub()
    outbox = Outbox(4)
    hub.add_subscriber(outbox, EVENT_A)
    hub.publish(first := updated(EVENT_A, 1))
    hub.unsubscribe(outbox)
    hub.publish(updated(EVENT_A, 2))
    assert await drain(outbox) == [first]
    assert not hub.is_watched(EVENT_A)


def test_add_subscriber_during_shutdown_closes_at_once() -> None:
    hub = Hub()
    hub.close_all(GOING_AWAY)
    outbox = Outbox(4)
    hub.add_subscriber(outbox)
    assert outbox.close_code == GOING_AWAY


def test_subscribe_removes_on_exit() -> None:
    hub = Hub()
    outbox = Outbox(4)
    assert not hub.is_watched(EVENT_A)
    with hub.subscribe(outbox, EVENT_A):
        assert hub.is_watched(EVENT_A)
        assert not hub.is_watched(EVENT_B)
        assert hub.statistics().connections == 1
    assert not hub.is_watched(EVENT_A)
    assert hub.statistics().connections == 0
    assert hub.statistics().watched_events == 0
    hub.publish(updated(EVENT_A, 1))
    assert len(outbox) == 0


def test_subscribe_removes_on_error() -> None:
    hub = Hub()
    outbox = Outbox(4)
    with pytest.raises(RuntimeError, match="connection lost"), hub.subscribe(outbox, EVENT_A):
        raise RuntimeError("connection lost")
    assert not hub.is_watched(EVENT_A)
    assert hub.statistics().connections == 0


def test_global_subscription_removed_on_exit() -> None:
    hub = Hub()
    outbox = Outbox(4)
    with hub.subscribe(outbox):
        assert hub.statistics().connections == 1
        assert hub.statistics().watched_events == 0
    assert hub.statistics().connections == 0
    hub.publish(updated(EVENT_A, 1))
    assert len(outbox) == 0


def test_event_stays_watched_while_another_subscriber_remains() -> None:
    hub = Hub()
    first, second = Outbox(4), Outbox(4)
    with hub.subscribe(first, EVENT_A):
        with hub.subscribe(second, EVENT_A):
            pass
        assert hub.is_watched(EVENT_A)
        hub.publish(updated(EVENT_A, 1))
        assert len(first) == 1
        assert len(second) == 0
    assert not hub.is_watched(EVENT_A)


def test_unsubscribe_is_idempotent() -> None:
    hub = Hub()
    outbox, other = Outbox(4), Outbox(4)
    with hub.subscribe(outbox, EVENT_A), hub.subscribe(other, EVENT_B):
        hub.unsubscribe(outbox)
        assert not hub.is_watched(EVENT_A)
        hub.unsubscribe(outbox)  # again, still inside the block
        hub.unsubscribe(Outbox(4))  # never subscribed
        assert hub.is_watched(EVENT_B)
        assert hub.statistics().connections == 1
    # Leaving the block unsubscribes a third time: no error.
    assert hub.statistics().connections == 0
    assert hub.statistics().watched_events == 0


async def test_overflowing_subscriber_is_dropped_during_publish() -> None:
    hub = Hub()
    slow = Outbox(2)  # never read
    healthy_all, healthy_a = Outbox(16), Outbox(16)
    changes = [updated(EVENT_A, seq) for seq in range(1, 6)]
    with (
        hub.subscribe(slow, EVENT_A),
        hub.subscribe(healthy_all),
        hub.subscribe(healthy_a, EVENT_A),
    ):
        hub.publish(changes[0])
        hub.publish(changes[1])
        assert not slow.closed
        assert hub.statistics().dropped_slow_clients == 0
        assert hub.statistics().connections == 3

        hub.publish(changes[2])  # the slow one's third eventUpdated: it closes
        assert slow.closed
        stats = hub.statistics()
        assert stats.dropped_slow_clients == 1
        assert stats.connections == 2
        assert stats.watched_events == 1

        hub.publish(changes[3])
        hub.publish(changes[4])
        # Dropped once, counted once; it hears nothing more.
        assert hub.statistics().dropped_slow_clients == 1
        assert len(slow) == 0
        assert await expect_closing(slow) == TRY_AGAIN_LATER
        # Nobody else noticed.
        assert await drain(healthy_all) == changes
        assert await drain(healthy_a) == changes


async def test_overflowing_global_subscriber_is_dropped_and_unwatched() -> None:
    hub = Hub()
    slow = Outbox(1)
    with hub.subscribe(slow):
        hub.publish(updated(EVENT_A, 1))
        hub.publish(updated(EVENT_B, 1))
        assert slow.closed
        assert hub.statistics().connections == 0
        assert hub.statistics().dropped_slow_clients == 1


def test_only_watcher_dropped_unwatches_the_event() -> None:
    hub = Hub()
    slow = Outbox(1)
    with hub.subscribe(slow, EVENT_A):
        hub.publish(updated(EVENT_A, 1))
        assert hub.is_watched(EVENT_A)
        hub.publish(updated(EVENT_A, 2))
        assert not hub.is_watched(EVENT_A)
        assert hub.statistics().watched_events == 0
    assert hub.statistics().dropped_slow_clients == 1


async def test_subscriber_closed_for_shutdown_is_not_counted_as_slow() -> None:
    # close_all(1001) asks every connection to close; until its task runs and
    # unsubscribes, actors may still publish (committing what is pending at
    # shutdown). That client was not slow and must not count as dropped.
    hub = Hub()
    outbox = Outbox(16)
    with hub.subscribe(outbox, EVENT_A):
        hub.close_all(GOING_AWAY)
        hub.publish(updated(EVENT_A, 1))
        assert hub.statistics().dropped_slow_clients == 0
        assert await expect_closing(outbox) == GOING_AWAY


async def test_close_all_reaches_every_subscriber() -> None:
    hub = Hub()
    outboxes = [Outbox(4) for _ in range(4)]
    outboxes[1].put_nowait(updated(EVENT_A, 1))  # something still queued: dropped
    with (
        hub.subscribe(outboxes[0]),
        hub.subscribe(outboxes[1], EVENT_A),
        hub.subscribe(outboxes[2], EVENT_A),
        hub.subscribe(outboxes[3], EVENT_B),
    ):
        hub.close_all(GOING_AWAY)
        for outbox in outboxes:
            assert outbox.closed
            assert await expect_closing(outbox) == GOING_AWAY


async def test_close_all_wakes_blocked_connections() -> None:
    hub = Hub()
    outboxes = [Outbox(4), Outbox(4)]
    codes: list[int] = []

    async def connection(outbox: Outbox) -> None:
        try:
            await outbox.get()
        except Closing as closing:
            codes.append(closing.code)

    with hub.subscribe(outboxes[0]), hub.subscribe(outboxes[1], EVENT_A):
        with trio.fail_after(TIMEOUT_SECONDS):
            async with trio.open_nursery() as nursery:
                for outbox in outboxes:
                    nursery.start_soon(connection, outbox)
                await trio.testing.wait_all_tasks_blocked()
                assert codes == []
                hub.close_all(GOING_AWAY)
    assert codes == [GOING_AWAY, GOING_AWAY]


def test_statistics_counts_connections_once() -> None:
    hub = Hub()
    assert hub.statistics().connections == 0
    assert hub.statistics().watched_events == 0
    assert hub.statistics().dropped_slow_clients == 0
    both, only_a, only_b, everything = Outbox(4), Outbox(4), Outbox(4), Outbox(4)
    with (
        hub.subscribe(both),
        hub.subscribe(both, EVENT_A),
        hub.subscribe(only_a, EVENT_A),
        hub.subscribe(only_b, EVENT_B),
        hub.subscribe(everything),
    ):
        stats = hub.statistics()
        assert stats.connections == 4
        assert stats.watched_events == 2
        assert stats.dropped_slow_clients == 0
    stats = hub.statistics()
    assert stats.connections == 0
    assert stats.watched_events == 0


def test_an_outbox_drops_what_its_snapshot_already_covered():
    outbox = Outbox(8)
    outbox.put_nowait(Change.snapshot(make_event(version=5)))
    outbox.floor = 5
    for seq in (4, 5, 6):  # 4 and 5 published late (held for another daemon's change)
        outbox.put_nowait(capacity(EVENT_A, seq))
    assert [change.seq for change in outbox.take_nowait()] == [5, 6]
