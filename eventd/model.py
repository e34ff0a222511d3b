"""The records eventd serves: events, attendees, registrations.

Frozen dataclasses built from database rows, rendered to the camelCase JSON of
the public contract. An event's JSON is encoded once per version and reused by
every read and snapshot.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

RegistrationStatus = Literal["confirmed", "waitlisted"]


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a trailing Z; milliseconds only when present."""
    moment = moment.astimezone(UTC)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def parse_time(text: str) -> datetime:
    """The inverse of :func:`format_time`."""
    return datetime.fromisoformat(text)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass(frozen=True)
class EventCounts:
    """An event's counts and version as the database left them after a change."""

    event_id: uuid.UUID
    max_attendees: int
    confirmed_count: int
    waitlist_count: int
    version: int
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> EventCounts:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class Event:
    id: uuid.UUID
    name: str
    description: str
    starts_at: datetime
    duration_minutes: int
    location: str
    max_attendees: int
    confirmed_count: int
    waitlist_count: int
    version: int
    created_at: datetime
    updated_at: datetime

    COLUMNS = (
        "id, name, description, starts_at, duration_minutes, location, max_attendees, "
        "confirmed_count, waitlist_count, version, created_at, updated_at"
    )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Event:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    @property
    def available_spots(self) -> int:
        return self.max_attendees - self.confirmed_count

    def with_counts(self, counts: EventCounts) -> Event:
        """This event with newer counts; older news is ignored."""
        if counts.version <= self.version:
            return self
        return self.at_counts(counts)

    def at_counts(self, counts: EventCounts) -> Event:
        """This event's fields with exactly these counts and version, older or not."""
        return dataclasses.replace(
            self,
            max_attendees=counts.max_attendees,
            confirmed_count=counts.confirmed_count,
            waitlist_count=counts.waitlist_count,
            version=counts.version,
            updated_at=counts.updated_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "description": self.description,
            "date": format_time(self.starts_at),
            "durationMinutes": self.duration_minutes,
            "endsAt": format_time(self.ends_at),
            "location": self.location,
            "maxAttendees": self.max_attendees,
            "registeredCount": self.confirmed_count,
            "availableSpots": self.available_spots,
            "waitlistCount": self.waitlist_count,
            "version": self.version,
            "createdAt": format_time(self.created_at),
            "updatedAt": format_time(self.updated_at),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        """The inverse of :meth:`to_json` (for events that arrive from another daemon)."""
        return cls(
            id=uuid.UUID(data["id"]),
            name=data["name"],
            description=data["description"],
            starts_at=parse_time(data["date"]),
            duration_minutes=data["durationMinutes"],
            location=data["location"],
            max_attendees=data["maxAttendees"],
            confirmed_count=data["registeredCount"],
            waitlist_count=data["waitlistCount"],
            version=data["version"],
            created_at=parse_time(data["createdAt"]),
            updated_at=parse_time(data["updatedAt"]),
        )

    @functools.cached_property
    def json_bytes(self) -> bytes:
        # Copied at its exact size: orjson's result keeps the buffer it was written
        # into (~8 KiB for ~400 bytes), and a live event keeps this while it is live.
        return bytes(memoryview(orjson.dumps(self.to_json())))

    def summary_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "date": format_time(self.starts_at),
            "location": self.location,
        }


@dataclasses.dataclass(frozen=True)
class Attendee:
    id: uuid.UUID
    name: str
    email: str
    created_at: datetime

    COLUMNS = "id, name, email, created_at"

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Attendee:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "email": self.email,
            "createdAt": format_time(self.created_at),
        }


@dataclasses.dataclass(frozen=True)
class Registration:
    id: uuid.UUID
    event_id: uuid.UUID
    attendee_id: uuid.UUID
    status: RegistrationStatus
    waitlist_position: int | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "eventId": str(self.event_id),
            "attendeeId": str(self.attendee_id),
            "status": self.status,
            "waitlistPosition": self.waitlist_position,
            "createdAt": format_time(self.created_at),
        }
