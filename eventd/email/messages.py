"""The messages eventd sends, composed from an outbox row.

Every message has a plain-text body and an HTML alternative, a subject that
names the event, and a stable Message-ID made from the outbox row's id, so a
message sent again after a crash is recognisably the same message. Times are
the event's local time with its zone's abbreviation ("Sat 1 Jun 2030, 18:00 –
19:00 CEST"). A message about a seat carries a calendar part
(:mod:`eventd.email.calendar`): an invitation, its update, or its cancellation.
"""

from __future__ import annotations

import dataclasses
import html
import uuid
from datetime import datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from typing import Any

from eventd.email.calendar import calendar, calendar_method
from eventd.model import utc_now
from eventd.timezones import DEFAULT_TIMEZONE, local_span, local_time


@dataclasses.dataclass(frozen=True)
class OutboxMessage:
    id: uuid.UUID
    kind: str
    recipient: str
    payload: dict[str, Any]
    # The registration's manage page with the message's token
    # ({server.public_url}/r/{id}?token=…), when the message carries one.
    manage_url: str | None = None


def manage_url(public_url: str, payload: dict[str, Any]) -> str | None:
    """The manage link of a message about a registration, from its payload's token."""
    registration = payload.get("registration") or {}
    token = registration.get("token")
    if not token:
        return None
    return f"{public_url}/r/{registration['id']}?token={token}"


def _when(event: dict[str, Any]) -> str:
    # An event queued before events had a zone was shown in UTC, as it still is.
    return local_span(
        datetime.fromisoformat(event["startsAt"]),
        datetime.fromisoformat(event["endsAt"]),
        event.get("timezone", DEFAULT_TIMEZONE),
    )


# kind -> (subject, first paragraph); {name} is the event's name.
_WORDING = {
    "registration_confirmed": ("You're registered: {name}", "Your place at {name} is confirmed."),
    "waitlisted": ("You're on the waitlist: {name}",
                   "{name} is full, so you are on its waitlist. We'll write if a spot frees up."),
    "promoted": ("A spot opened up: {name}",
                 "Good news: a spot opened up and your place at {name} is now confirmed."),
    "registration_cancelled": ("Registration cancelled: {name}",
                               "Your registration for {name} has been cancelled."),
    "event_cancelled": ("Event cancelled: {name}", "{name} has been cancelled. We're sorry."),
    "event_changed": ("Event changed: {name}", "The time or place of {name} has changed."),
    "reminder": ("Reminder: {name}", "A reminder that {name} is coming up."),
    "held": ("Confirm your place: {name}",
             "A place at {name} is held for you. Open the link below to confirm it before"
             " the deadline; after it, the place is released."),
    "offered": ("A spot is yours to claim: {name}",
                "A spot opened up at {name} and it is offered to you. Open the link below to"
                " claim it before the deadline; after it, it goes to the next in line."),
    "expired": ("Your hold expired: {name}",
                "Your place at {name} was not confirmed in time, so it has been released."),
}
# The kinds whose link is the one way to confirm: the deadline is shown with it.
_CONFIRM_BY_LINK = frozenset({"held", "offered"})


def compose(message: OutboxMessage, sender: str) -> Message:
    event = message.payload["event"]
    attendee = message.payload["attendee"]
    subject, opening = _WORDING[message.kind]
    opening = opening.format(name=event["name"])
    details = [
        ("When", _when(event)),
        ("Where", event["location"]),
    ]
    registration = message.payload.get("registration") or {}
    if message.kind in _CONFIRM_BY_LINK and registration.get("expiresAt"):
        deadline = datetime.fromisoformat(registration["expiresAt"])
        details.append(("Confirm by", local_time(deadline, event.get("timezone",
                                                                     DEFAULT_TIMEZONE))))
    if message.manage_url is not None:
        label = "Confirm" if message.kind in _CONFIRM_BY_LINK else "Manage"
        details.append((label, message.manage_url))
    text = "\n".join([
        f"Hello {attendee['name']},",
        "",
        opening,
        "",
        *(f"{label}: {value}" for label, value in details),
        "",
        "— eventd",
    ])
    rows = "".join(
        f"<tr><th scope=\"row\">{label}</th><td>{html.escape(value)}</td></tr>"
        for label, value in details
    )
    body_html = (
        f"<p>Hello {html.escape(attendee['name'])},</p><p>{html.escape(opening)}</p>"
        f"<table>{rows}</table><p>— eventd</p>"
    )
    # The compat32 MIME classes, not EmailMessage: the same message, built
    # and flattened in a sixth of the time — it runs once per registration.
    alternative = MIMEMultipart("alternative")
    # (typeshed says str; the stdlib takes a Charset too, here for its QP body encoding)
    alternative.attach(MIMEText(text, "plain", _UTF8))  # type: ignore[arg-type]
    alternative.attach(MIMEText(body_html, "html", _UTF8))  # type: ignore[arg-type]
    email: Message = alternative
    method = calendar_method(message.kind, message.payload)
    if method is not None:
        email = MIMEMultipart("mixed")
        email.attach(alternative)
        text = calendar(message.payload, message.recipient, sender, method)
        part = MIMEText(text, "calendar", _UTF8)  # type: ignore[arg-type]
        part.set_param("method", method)
        name = "invite.ics" if method == "REQUEST" else "cancel.ics"
        part.add_header("Content-Disposition", "attachment", filename=name)
        email.attach(part)
    email["Subject"] = _header(subject.format(name=event["name"]))  # type: ignore[assignment]
    email["From"] = sender
    email["To"] = message.recipient
    email["Date"] = format_datetime(utc_now())
    email["Message-ID"] = f"<{message.id}@eventd>"
    return email


_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP  # readable in the raw message, unlike base64


def _header(value: str) -> str | Header:
    """A header value; non-ASCII text encoded as RFC 2047 says."""
    return value if value.isascii() else Header(value, "utf-8")
