"""The closed vocabulary of an event actor's mailbox.

Requests carry a :class:`Reply` the sender awaits; notices carry none.
:class:`Register`, :class:`Cancel`, :class:`Confirm` and :class:`Expire` take
the registration path (a round, ``eventd.actors.rounds``); made once per
request, they are named tuples (cheaper to make than frozen dataclasses).
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from typing import Any, NamedTuple

from eventd.model import EventCounts
from eventd.realtime.changes import Change
from eventd.reply import Reply

__all__ = ["Cancel", "CheckIn", "Confirm", "CountsChanged", "DeleteEvent", "Expire", "Message",
           "Notice", "Register", "RegistrationRequest", "Reload", "Remote", "Reply", "Request",
           "UpdateEvent"]


class Register(NamedTuple):
    registration_id: uuid.UUID | None  # None: the database makes one as it commits
    attendee_id: uuid.UUID
    waitlist: bool
    reply: Reply[Any]
    deadline: float = math.inf  # trio's clock: past it, the asker is gone; never written then
    hold: bool = False  # start held, even when the event confirms at once
    by_email: bool = False  # the attendee was found by email: held, its token mailed
    # The SHA-256 of the Admission-Token sent (None: none); a queued event's
    # registration needs an admitted ticket's, and uses it up as it commits.
    admission: bytes | None = None


class Cancel(NamedTuple):
    registration_id: uuid.UUID
    reply: Reply[Any]
    deadline: float = math.inf


class Confirm(NamedTuple):
    """Confirm a held or offered registration (the asker showed its token)."""

    registration_id: uuid.UUID
    reply: Reply[Any]
    deadline: float = math.inf


class CheckIn(NamedTuple):
    """Let a ticket's holder in (its signature was checked by the asker)."""

    registration_id: uuid.UUID
    reply: Reply[Any]
    deadline: float = math.inf


class Expire(NamedTuple):
    """The actor's expiry timer fired: expire the event's due holds and offers."""

    reply: Reply[Any]
    deadline: float = math.inf


@dataclasses.dataclass(frozen=True)
class UpdateEvent:
    changes: dict[str, Any]
    reply: Reply[Any]

    def __post_init__(self) -> None:
        if not self.changes:
            raise ValueError("an UpdateEvent needs at least one change")


@dataclasses.dataclass(frozen=True)
class DeleteEvent:
    reply: Reply[Any]


@dataclasses.dataclass(frozen=True)
class Reload:
    """Read the event again from the database: changes made elsewhere may have been missed."""

    reply: Reply[Any]


@dataclasses.dataclass(frozen=True)
class CountsChanged:
    """News from outside the actor (an attendee deleted, another daemon): adopt if newer."""

    counts: EventCounts


@dataclasses.dataclass(frozen=True)
class Remote:
    """A change made through another daemon, relayed by Redis: adopt it, publish it in order."""

    change: Change


RegistrationRequest = Register | Cancel | Confirm | Expire
Request = Register | Cancel | Confirm | Expire | UpdateEvent | DeleteEvent | Reload | CheckIn
Notice = CountsChanged | Remote
Message = Request | Notice
