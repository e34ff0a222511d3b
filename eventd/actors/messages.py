"""The closed vocabulary of an event actor's mailbox.

Requests carry a :class:`Reply` the sender awaits; notices carry none.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, Generic, TypeVar

import outcome
import trio

from eventd.model import EventCounts

T = TypeVar("T")


class Reply(Generic[T]):
    """A one-shot answer: set once by the actor, awaited by the requester."""

    def __init__(self) -> None:
        self._done = trio.Event()
        self._result: outcome.Outcome[T] | None = None

    def set(self, value: T) -> None:
        self._settle(outcome.Value(value))

    def fail(self, error: BaseException) -> None:
        self._settle(outcome.Error(error))

    def _settle(self, result: outcome.Outcome[T]) -> None:
        if not self._done.is_set():
            self._result = result
            self._done.set()

    @property
    def settled(self) -> bool:
        return self._done.is_set()

    async def wait(self) -> T:
        await self._done.wait()
        assert self._result is not None
        return self._result.unwrap()


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
