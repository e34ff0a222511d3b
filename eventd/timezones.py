"""Time zones: which names an event may carry, and its time as people read it there.

An event's ``timezone`` is an IANA name (``Europe/Berlin``). Its times stay
UTC in JSON; emails and ``eventd watch`` show them in the event's zone with
the zone's abbreviation for that moment ("Sat 1 Jun 2030, 18:00 CEST"), and
calendar invitations carry the zone itself. The zone data comes from the
system's tz database, or else from the ``tzdata`` package, so every machine
knows every name.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime
from importlib import resources

DEFAULT_TIMEZONE = "UTC"
# The longest IANA name is about 30 characters; anything past this is no zone.
MAX_NAME_CHARS = 64

# English words, not the C library's locale: a message reads the same wherever it is sent.
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@functools.cache
def _known_names() -> frozenset[str]:
    # The tzdata package's list, not the system's directory: the same names are
    # valid on every machine, and a system file such as "localtime" is no name.
    # "Factory" is a placeholder of the database ("-00"), not a place.
    listed = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(listed.split()) - {"Factory"}


def is_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine can load.

    Only the names of the tz database, as the ``tzdata`` package lists them:
    a path (``../etc``), a POSIX TZ string (``EST5EDT,M3.2.0,M11.1.0``) or a
    system file such as ``localtime`` is none.
    """
    return len(name) <= MAX_NAME_CHARS and name in _known_names()


@functools.cache
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone named ``name``; UTC for a name this machine does not know.

    Names are checked when an event is created or changed; a message queued
    long ago or an event cached by another daemon may still name one that a
    machine with older zone data lacks, and it is better read in UTC than not
    at all.
    """
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(DEFAULT_TIMEZONE)


def local_time(moment: datetime, name: str) -> str:
    """``moment`` as read in zone ``name``: "Sat 1 Jun 2030, 18:00 CEST"."""
    here = moment.astimezone(zone(name))
    return (
        f"{_WEEKDAYS[here.weekday()]} {here.day} {_MONTHS[here.month - 1]} {here.year},"
        f" {here:%H:%M} {here.tzname()}"
    )


def local_span(start: datetime, end: datetime, name: str) -> str:
    """From ``start`` to ``end`` in zone ``name``; the day and zone said once when they agree:
    "Sat 1 Jun 2030, 18:00 – 19:30 CEST"."""
    first, last = local_time(start, name), local_time(end, name)
    day, _, _ = first.rpartition(", ")
    last_day, _, last_clock = last.rpartition(", ")
    first_clock, _, first_abbreviation = first.rpartition(" ")
    if day == last_day and last_clock.endswith(" " + first_abbreviation):
        return f"{first_clock} – {last_clock}"
    return f"{first} – {last}"
