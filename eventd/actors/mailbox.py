"""Mailbox: an event actor's bounded queue of messages, costing next to nothing while empty.

A trio memory channel per actor costs ~1.8 KiB even when empty, and a task
blocked on it costs more; with a hundred thousand live events that is most of
the daemon's memory. This mailbox is a deque made on the first message and
dropped when drained, so a dormant actor's mailbox is a handful of pointers,
and nobody waits on it: the supervisor starts the actor's task when a message
arrives (see ``Supervisor._wake``).

Requests wait for room, in the order they came: the bound is the backpressure
of a hot event. Notices never wait: their senders cannot be slowed down, and a
dropped notice would leave a version no stream ever sees, so a notice may take
the mailbox over its bound.
"""

from __future__ import annotations

import collections

import trio

from eventd.actors import messages as m

_REGISTRATIONS = (m.Register, m.Cancel, m.Confirm, m.Expire)


class MailboxClosed(Exception):
    """The actor was retired or its event deleted: the sender should ask the supervisor again."""


class Mailbox:
    __slots__ = ("_bound", "_messages", "_room", "_admitted", "_arrival", "closed")

    def __init__(self, bound: int) -> None:
        self._bound = bound
        self._messages: collections.deque[m.Message] | None = None  # None while empty
        self._room: trio.lowlevel.ParkingLot | None = None  # senders waiting for room
        self._admitted = 0  # senders let out of the waiting room, each with a place kept
        self._arrival: trio.Event | None = None  # set when the actor waits for a message
        self.closed = False

    def __len__(self) -> int:
        return 0 if self._messages is None else len(self._messages)

    async def put(self, message: m.Message) -> None:
        """Add ``message`` once there is room, after the senders already waiting.

        Raises :class:`MailboxClosed` if the mailbox is closed before there
        is; a sender cancelled while waiting has handed nothing over.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.closed:
            raise MailboxClosed
        if len(self) + self._admitted >= self._bound or self._room:
            if self._room is None:
                self._room = trio.lowlevel.ParkingLot()
            await self._room.park()  # once let out, a sender is no longer cancellable
            self._admitted -= 1
            if self.closed:
                raise MailboxClosed
        self._append(message)

    def put_notice(self, notice: m.Notice) -> None:
        """Add ``notice`` now, over the bound if need be."""
        if self.closed:
            raise MailboxClosed
        self._append(notice)

    def put_back(self, messages: list[m.RegistrationRequest]) -> None:
        """Return taken messages to the front, in their order (over the bound if need be):
        the writer could not lock their event, and they go again in a later round."""
        if not messages:
            return
        if self._messages is None:
            self._messages = collections.deque()
        self._messages.extendleft(reversed(messages))

    def registrations_first(self) -> bool:
        """Is the oldest message a registration request (register, cancel, confirm, expire)?"""
        messages = self._messages
        return messages is not None and isinstance(messages[0], _REGISTRATIONS)

    def take_registrations(self, most: int) -> list[m.RegistrationRequest]:
        """The oldest ``most`` messages at most, in order, up to the first that is not a
        registration or cancellation; waiting senders get their room."""
        messages = self._messages
        taken: list[m.RegistrationRequest] = []
        while messages and len(taken) < most and isinstance(messages[0], _REGISTRATIONS):
            taken.append(messages.popleft())  # type: ignore[arg-type]
        self._taken()
        return taken

    def take_others(self, most: int) -> list[m.Message]:
        """Like :meth:`take_registrations`, for the messages before the first registration."""
        messages = self._messages
        taken: list[m.Message] = []
        while messages and len(taken) < most and not isinstance(messages[0], _REGISTRATIONS):
            taken.append(messages.popleft())
        self._taken()
        return taken

    def _taken(self) -> None:
        """Messages were taken: drop an empty deque, let waiting senders in."""
        if not self._messages:
            self._messages = None
        if self._room is not None:
            room = self._bound - len(self) - self._admitted
            if room > 0:
                self._admitted += len(self._room.unpark(count=room))
            if not self._room:
                self._room = None  # everyone let out, or gone

    async def wait(self, deadline: float) -> None:
        """Until a message is here, or ``deadline`` (trio's clock) has passed."""
        if self._messages:
            await trio.lowlevel.checkpoint()
            return
        arrival = self._arrival = trio.Event()
        try:
            with trio.move_on_at(deadline):
                await arrival.wait()
        finally:
            self._arrival = None

    def close(self) -> list[m.Message]:
        """Refuse every message from now on; return those not taken. Waiting senders are told."""
        self.closed = True
        left = list(self._messages or ())
        self._messages = None
        if self._room is not None:
            self._admitted += len(self._room.unpark_all())
            self._room = None
        return left

    def _append(self, message: m.Message) -> None:
        if self._messages is None:
            self._messages = collections.deque()
        self._messages.append(message)
        if self._arrival is not None:
            self._arrival.set()
