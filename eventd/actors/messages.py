"""The closed vocabulary of an event actor's mailbox.

Requests carry a :class:`Reply` the sender awaits; notices carry none.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from eventd.model import EventCounts
from eventd.reply import Reply

__all__ = ["Cancel", "CountsChanged", "DeleteEvent", "Message", "Register", "Reply", "Request",
           "UpdateEvent"]


@dataclasses.dataclass(frozen=True)
class Register:
    registration_id: uuid.UUID
    attendee_id: uuid.UUID
    waitlist: bool
    reply: Reply[Any]


@dataclasses.dataclass(frozen=True)
class Cancel:
    registration_id: uuid.UUID
    reply: Reply[Any]


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
class CountsChanged:
    """News from outside the actor (an attendee deleted, another daemon): adopt if newer."""

    counts: EventCounts


Request = Register | Cancel | UpdateEvent | DeleteEvent
Message = Request | CountsChanged
