"""The calendar part of a message: an iTIP invitation or cancellation (RFC 5546).

Each registration is one calendar event, with a ``UID`` made from the
registration's id, so every message about it — the confirmation, a move,
the cancellation — updates the same entry in the attendee's calendar:

- a confirmation (or a promotion from the waitlist) is ``METHOD:REQUEST``;
- a change of the event's time or place is ``REQUEST`` again, with the
  event's ``SEQUENCE`` one higher (``events.calendar_sequence``, raised in
  the transaction that moved it), so calendars take it over the old one;
- a cancelled registration or a deleted event is ``METHOD:CANCEL``, one
  ``SEQUENCE`` past the last invitation, ``STATUS:CANCELLED``.

The organizer is ``email.from``; the attendee is the message's recipient.
Times carry the event's zone (``TZID``) with its ``VTIMEZONE``, built from the
zone data for the years around the event; an event in UTC needs none and
says its times in UTC (``…Z``).

A registration that never held a seat (waitlisted, held, offered) has no
entry to update: its messages carry no calendar part.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from icalendar import Calendar, Event, vCalAddress

from eventd.model import utc_now
from eventd.timezones import DEFAULT_TIMEZONE, zone

Method = Literal["REQUEST", "CANCEL"]

# The kind of message -> the iTIP method of its calendar part.
METHODS: dict[str, Method] = {
    "registration_confirmed": "REQUEST",
    "promoted": "REQUEST",
    "event_changed": "REQUEST",
    "registration_cancelled": "CANCEL",
    "event_cancelled": "CANCEL",
}
# Statuses of a registration that was never sent an invitation.
_NEVER_INVITED = frozenset({"waitlisted", "held", "offered"})
# How far around the event the VTIMEZONE's transitions reach.
_ZONE_MARGIN = timedelta(days=366)


def calendar_method(kind: str, payload: dict[str, Any]) -> Method | None:
    """The method of the calendar part of a message of ``kind``, or None when it has none."""
    method = METHODS.get(kind)
    if method is None or payload["registration"].get("status") in _NEVER_INVITED:
        return None
    return method


def uid(registration_id: str) -> str:
    """The registration's calendar UID: the same in every message about it."""
    return f"{registration_id}@eventd"


def calendar(payload: dict[str, Any], recipient: str, sender: str, method: Method) -> str:
    """The iCalendar text (RFC 5545, CRLF lines) of a message's calendar part.

    ``payload`` is the outbox row's (``sql/functions/eventd_email_payload.sql``).
    """
    event_data: dict[str, Any] = payload["event"]
    attendee_data: dict[str, Any] = payload["attendee"]
    # Queued before the event had a zone or a sequence: UTC, and the first invitation.
    where = zone(event_data.get("timezone", DEFAULT_TIMEZONE))
    sequence = int(event_data.get("sequence", 0))
    start = datetime.fromisoformat(event_data["startsAt"]).astimezone(where)
    end = datetime.fromisoformat(event_data["endsAt"]).astimezone(where)

    entry = Event()
    entry.add("uid", uid(payload["registration"]["id"]))
    entry.add("dtstamp", utc_now())
    entry.add("dtstart", start)
    entry.add("dtend", end)
    entry.add("summary", event_data["name"])
    entry.add("location", event_data["location"])
    entry.add("organizer", vCalAddress(f"mailto:{sender}"))
    attendee = vCalAddress(f"mailto:{recipient}")
    attendee.params["cn"] = attendee_data["name"]
    attendee.params["role"] = "REQ-PARTICIPANT"
    attendee.params["partstat"] = "ACCEPTED"  # the seat is taken: nothing to answer
    attendee.params["rsvp"] = "FALSE"
    entry.add("attendee", attendee)
    if method == "REQUEST":
        entry.add("sequence", sequence)
        entry.add("status", "CONFIRMED")
    else:  # a cancellation is a revision of its own (RFC 5546 §2.1.4)
        entry.add("sequence", sequence + 1)
        entry.add("status", "CANCELLED")

    document = Calendar()
    document.add("prodid", "-//eventd//EN")
    document.add("version", "2.0")
    document.add("method", method)
    document.add_component(entry)
    document.add_missing_timezones(
        first_date=_day(start - _ZONE_MARGIN), last_date=_day(end + _ZONE_MARGIN)
    )
    text: str = document.to_ical().decode()
    return text


def _day(moment: datetime) -> date:
    return moment.date()
