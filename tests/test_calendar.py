"""Time zones and calendar parts: local times in messages, iTIP invitations (RFC 5546).

Calendar parts are parsed back with the ``icalendar`` package, not read with
our own code. The composing tests need no daemon; the last test follows one
registration's messages through the shared daemon, its outbox and the file
transport.
"""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import icalendar

from eventd.email.messages import OutboxMessage, compose
from eventd.timezones import is_timezone, local_span, local_time
from tests.conftest import create_event, mail_to, person, read_mail, register
from tests.support import DaemonProcess

SENDER = "noreply@events.example"
BERLIN = ZoneInfo("Europe/Berlin")


def payload(status: str = "confirmed", **event: Any) -> dict[str, Any]:
    return {
        "event": {
            "id": str(uuid.uuid4()),
            "name": "Summer Gala",
            "startsAt": "2030-06-01T16:00:00+00:00",
            "endsAt": "2030-06-01T17:30:00+00:00",
            "location": "Pier 9",
            "timezone": "Europe/Berlin",
            "sequence": 0,
            **event,
        },
        "attendee": {"id": str(uuid.uuid4()), "name": "Zoë Doe", "email": "zoe@example.com"},
        "registration": {"id": str(uuid.uuid4()), "status": status},
    }


def composed(kind: str, body: dict[str, Any]) -> EmailMessage:
    message = OutboxMessage(uuid.uuid4(), kind, "zoe@example.com", body)
    parsed = email.message_from_bytes(
        compose(message, SENDER).as_bytes(), policy=email.policy.default
    )
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def calendar_of(message: EmailMessage) -> tuple[icalendar.Calendar, EmailMessage] | None:
    found = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    if not found:
        return None
    (part,) = found
    assert isinstance(part, EmailMessage)
    return icalendar.Calendar.from_ical(part.get_content()), part


def the_event(calendar: icalendar.Calendar) -> icalendar.Event:
    (event,) = calendar.walk("VEVENT")
    assert isinstance(event, icalendar.Event)
    return event


# --- local time -------------------------------------------------------------------


def test_local_time_names_the_zone_as_it_is_that_day():
    summer = datetime(2030, 6, 1, 16, tzinfo=UTC)
    winter = datetime(2030, 1, 5, 17, tzinfo=UTC)
    assert local_time(summer, "Europe/Berlin") == "Sat 1 Jun 2030, 18:00 CEST"
    assert local_time(winter, "Europe/Berlin") == "Sat 5 Jan 2030, 18:00 CET"
    assert local_time(summer, "America/New_York") == "Sat 1 Jun 2030, 12:00 EDT"
    assert local_time(summer, "Asia/Kolkata") == "Sat 1 Jun 2030, 21:30 IST"
    assert local_time(summer, "UTC") == "Sat 1 Jun 2030, 16:00 UTC"
    # One day and one zone are said once; a span over midnight or a change of
    # abbreviation (the night clocks go back) says both ends whole.
    assert local_span(summer, summer + timedelta(minutes=90), "Europe/Berlin") == (
        "Sat 1 Jun 2030, 18:00 – 19:30 CEST")
    assert local_span(summer, summer + timedelta(hours=8), "Europe/Berlin") == (
        "Sat 1 Jun 2030, 18:00 CEST – Sun 2 Jun 2030, 02:00 CEST")
    night = datetime(2030, 10, 26, 23, tzinfo=UTC)  # 01:00 CEST; at 03:00 CEST it is 02:00 CET
    assert local_span(night, night + timedelta(hours=3), "Europe/Berlin") == (
        "Sun 27 Oct 2030, 01:00 CEST – Sun 27 Oct 2030, 03:00 CET")


def test_only_iana_names_are_time_zones():
    for name in ("UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"):
        assert is_timezone(name), name
    for name in ("", "CEST", "localtime", "Factory", "../../etc/passwd", "/etc/localtime",
                 "europe/berlin", "Europe/Berlin ", "EST5EDT,M3.2.0,M11.1.0", "Mars/Base"):
        assert not is_timezone(name), name


# --- composing -----------------------------------------------------------------------


def test_a_confirmation_says_the_local_time_and_invites_with_tzid_and_vtimezone():
    body = payload()
    message = composed("registration_confirmed", body)
    assert "When: Sat 1 Jun 2030, 18:00 – 19:30 CEST" in text_of(message)
    html = message.get_body(("html",))
    assert html is not None
    assert "Sat 1 Jun 2030, 18:00 – 19:30 CEST" in html.get_content()

    found = calendar_of(message)
    assert found is not None
    calendar, part = found
    assert part.get_param("method") == "REQUEST"
    assert part.get_filename() == "invite.ics"
    assert calendar["METHOD"] == "REQUEST"
    assert calendar["VERSION"] == "2.0"
    assert calendar["PRODID"]
    event = the_event(calendar)
    assert event["UID"] == f"{body['registration']['id']}@eventd"
    assert event["SEQUENCE"] == 0
    assert event["STATUS"] == "CONFIRMED"
    assert event["SUMMARY"] == "Summer Gala"
    assert event["LOCATION"] == "Pier 9"
    assert event["ORGANIZER"] == f"mailto:{SENDER}"
    attendee = event["ATTENDEE"]
    assert attendee == "mailto:zoe@example.com"
    assert attendee.params["CN"] == "Zoë Doe"
    assert attendee.params["ROLE"] == "REQ-PARTICIPANT"
    assert event["DTSTAMP"].dt.tzinfo is not None
    # The times in the event's zone, by TZID, with that zone's definition beside them.
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event["DTEND"].params["TZID"] == "Europe/Berlin"
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert (start.hour, start.minute, end.hour, end.minute) == (18, 0, 19, 30)
    assert start == datetime(2030, 6, 1, 16, tzinfo=UTC)
    assert end == datetime(2030, 6, 1, 17, 30, tzinfo=UTC)
    (zone,) = calendar.walk("VTIMEZONE")
    assert zone["TZID"] == "Europe/Berlin"
    names = {str(c["TZNAME"]) for c in zone.walk() if c.name in ("STANDARD", "DAYLIGHT")}
    assert names == {"CET", "CEST"}
    assert zone.to_tz().utcoffset(datetime(2030, 6, 1, 18)) == timedelta(hours=2)


def test_an_event_in_utc_says_its_times_in_utc():
    message = composed("promoted", payload(timezone="UTC"))
    assert "When: Sat 1 Jun 2030, 16:00 – 17:30 UTC" in text_of(message)
    found = calendar_of(message)
    assert found is not None
    calendar, _ = found
    event = the_event(calendar)
    assert event.to_ical().decode().count("DTSTART:20300601T160000Z") == 1
    assert calendar.walk("VTIMEZONE") == []
    assert calendar["METHOD"] == "REQUEST"


def test_a_moved_event_is_a_request_with_its_new_sequence():
    body = payload(sequence=3, startsAt="2030-06-02T16:00:00+00:00",
                   endsAt="2030-06-02T17:00:00+00:00")
    message = composed("event_changed", body)
    assert "Sun 2 Jun 2030, 18:00 – 19:00 CEST" in text_of(message)
    found = calendar_of(message)
    assert found is not None
    calendar, _ = found
    event = the_event(calendar)
    assert calendar["METHOD"] == "REQUEST"
    assert event["SEQUENCE"] == 3
    assert event["UID"] == f"{body['registration']['id']}@eventd"


def test_cancellations_cancel_the_same_entry_one_sequence_later():
    for kind, status in [("registration_cancelled", "confirmed"),
                         ("event_cancelled", "confirmed"),
                         ("registration_cancelled", "cancelled")]:
        body = payload(status=status, sequence=2)
        found = calendar_of(composed(kind, body))
        assert found is not None, kind
        calendar, part = found
        assert part.get_param("method") == "CANCEL"
        assert part.get_filename() == "cancel.ics"
        assert calendar["METHOD"] == "CANCEL"
        event = the_event(calendar)
        assert event["UID"] == f"{body['registration']['id']}@eventd"
        assert event["SEQUENCE"] == 3
        assert event["STATUS"] == "CANCELLED"
        assert event["ORGANIZER"] == f"mailto:{SENDER}"
        assert event["ATTENDEE"] == "mailto:zoe@example.com"


def test_who_never_held_a_seat_gets_no_calendar_part():
    for kind in ("waitlisted", "event_changed", "event_cancelled", "registration_cancelled"):
        message = composed(kind, payload(status="waitlisted"))
        assert calendar_of(message) is None, kind
        assert "Sat 1 Jun 2030, 18:00 – 19:30 CEST" in text_of(message)
    assert calendar_of(composed("reminder", payload())) is None


def test_a_message_queued_before_time_zones_reads_in_utc():
    body = payload()
    del body["event"]["timezone"], body["event"]["sequence"]
    message = composed("registration_confirmed", body)
    assert "When: Sat 1 Jun 2030, 16:00 – 17:30 UTC" in text_of(message)
    found = calendar_of(message)
    assert found is not None
    assert the_event(found[0])["SEQUENCE"] == 0


# --- through the daemon ----------------------------------------------------------------


async def test_one_registrations_calendar_follows_its_event(
    client: httpx.AsyncClient, daemon: DaemonProcess
):
    mailbox = daemon.workdir / "var" / "mail"
    name = f"Zoned {uuid.uuid4().hex[:6]}"
    start = datetime(2031, 7, 4, 16, 30, tzinfo=UTC)  # 18:30 CEST
    event = await create_event(client, name=name, date=start.isoformat(), maxAttendees=2,
                               durationMinutes=90, timezone="Europe/Berlin")
    seated, other, waiting = await person(client), await person(client), await person(client)
    registration = (await register(client, event["id"], seated["id"])).json()
    await register(client, event["id"], other["id"])
    await register(client, event["id"], waiting["id"], waitlist=True)
    uid = f"{registration['id']}@eventd"

    def request_of(message: EmailMessage, method: str) -> icalendar.Event:
        found = calendar_of(message)
        assert found is not None
        calendar, _ = found
        assert calendar["METHOD"] == method
        entry = the_event(calendar)
        assert entry["UID"] == uid
        return entry

    confirmation = await mail_to(mailbox, seated["email"], f"You're registered: {name}")
    assert "When: Fri 4 Jul 2031, 18:30 – 20:00 CEST" in text_of(confirmation)
    invited = request_of(confirmation, "REQUEST")
    assert invited["SEQUENCE"] == 0
    assert invited["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert invited.decoded("DTSTART") == start

    # A new name or zone is no new time or place: no message, no new sequence.
    for change in ({"name": f"{name}!"}, {"timezone": "Europe/Paris"}, {"name": name}):
        assert (await client.patch(f"/events/{event['id']}", json=change)).status_code == 200
    moved_to = start + timedelta(days=1)
    response = await client.patch(f"/events/{event['id']}", json={"date": moved_to.isoformat()})
    assert response.status_code == 200, response.text
    changed = await mail_to(mailbox, seated["email"], f"Event changed: {name}")
    assert "Sat 5 Jul 2031, 18:30 – 20:00 CEST" in text_of(changed)
    updated = request_of(changed, "REQUEST")
    assert updated["SEQUENCE"] == invited["SEQUENCE"] + 1
    assert updated["DTSTART"].params["TZID"] == "Europe/Paris"
    assert updated.decoded("DTSTART") == moved_to
    waiting_changed = await mail_to(mailbox, waiting["email"], f"Event changed: {name}")
    assert calendar_of(waiting_changed) is None  # never invited: nothing to update

    assert (await client.delete(f"/registrations/{registration['id']}",
                                params={"token": registration["manageToken"]})).status_code == 204
    cancelled = await mail_to(mailbox, seated["email"], f"Registration cancelled: {name}")
    withdrawn = request_of(cancelled, "CANCEL")
    assert withdrawn["SEQUENCE"] == updated["SEQUENCE"] + 1
    assert withdrawn["STATUS"] == "CANCELLED"

    # The freed seat went to the waitlist; deleting the event cancels both seats.
    promoted = await mail_to(mailbox, waiting["email"], f"A spot opened up: {name}")
    assert calendar_of(promoted) is not None
    assert (await client.delete(f"/events/{event['id']}")).status_code == 204
    for who in (other, waiting):
        gone = await mail_to(mailbox, who["email"], f"Event cancelled: {name}")
        found = calendar_of(gone)
        assert found is not None
        assert found[0]["METHOD"] == "CANCEL"
        assert the_event(found[0])["SEQUENCE"] == updated["SEQUENCE"] + 1
    mine = [m for m in read_mail(mailbox) if m["To"] == seated["email"]]
    assert len(mine) == 3  # confirmation, the move, the cancellation: no more
