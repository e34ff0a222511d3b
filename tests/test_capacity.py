"""The capacity warning: "full" at no spots, "almostFull" at or under the ratio."""

from __future__ import annotations

import pytest

from eventd.realtime.capacity import capacity_warning
from tests.support import make_event


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
