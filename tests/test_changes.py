"""Change: a stream's message, its JSON text and its WebSocket frame, each built once.

Rules of this file: no sockets and no database; events and changes are built
directly (tests/support.py).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from eventd.model import utc_now
from eventd.realtime.changes import Change
from tests.support import (
    AT,
    EVENT_A,
    EVENT_B,
    capacity,
    client_messages,
    make_event,
    updated,
)


def decode(change: Change, ratio: float = 0.1) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(change.encode(ratio))
    return message


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
            "heldCount": 0,
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
