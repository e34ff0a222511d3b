"""The capacity warning a stream's ``eventCapacityUpdate`` carries: full, almost full, or none."""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

from eventd.model import Event

CapacityWarning = Literal["almostFull", "full"]


def capacity_warning(event: Event, almost_full_ratio: float) -> CapacityWarning | None:
    """ "full" at no spots; "almostFull" at or under the ratio (at least one spot)."""
    available = event.available_spots
    if available <= 0:
        return "full"
    # The ratio as written (0.29, not 0.28999…), so "≤ ratio × max" holds exactly.
    threshold: Fraction = Fraction(repr(almost_full_ratio)) * event.max_attendees
    if available <= max(Fraction(1), threshold):
        return "almostFull"
    return None
