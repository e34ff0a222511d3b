"""The model's values: an event at new counts.
"""

from __future__ import annotations

import dataclasses

from eventd.model import Event, EventCounts, utc_now
from tests.support import (
    FakeStore,
)


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
