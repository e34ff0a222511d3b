"""Supervisor: finds, starts, retires and restarts event actors.

Every request for an event goes through :meth:`Supervisor.ask`, which wakes the
event's actor (hydrating it from the database on first use), puts the message
in its bounded mailbox and awaits the reply. Actors live in the supervisor's
nursery; a crashed actor is logged, answered for, reloaded from the database
and started again on the same mailbox, and nothing else notices. An actor idle
for ``idle_seconds`` retires, so memory follows the working set.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from eventd.actors import messages as m
from eventd.actors.event_actor import EventActor, Peers, Publish, Submit
from eventd.errors import InternalError, NotFound, Unavailable
from eventd.model import Event
from eventd.realtime.hub import Change
from eventd.storage.event_cache import GONE, EventCache

log = logging.getLogger(__name__)

T = TypeVar("T")

MAILBOX_SIZE = 1024
IDLE_RETIRE_SECONDS = 300.0
RESTART_BACKOFF_SECONDS = (0.0, 0.05, 0.2, 1.0)
# A crash this long after the previous one counts as the first again.
RESTART_WINDOW_SECONDS = 60.0

LoadEvent = Callable[[uuid.UUID], Awaitable[Event | None]]


class ActorCrashed(InternalError):
    pass


@dataclasses.dataclass
class _Slot:
    """A live actor and its mailbox; the mailbox outlives a crash of the actor."""

    actor: EventActor
    send: trio.MemorySendChannel[m.Message]
    receive: trio.MemoryReceiveChannel[m.Message]
    restarts: int = 0  # crashes in a row, for the backoff
    last_crash: float = float("-inf")


@dataclasses.dataclass(frozen=True)
class SupervisorStatistics:
    live_actors: int
    hydrations: int
    retirements: int
    restarts: int
    outcomes: dict[str, int]  # registrations and cancellations answered, by outcome


class Supervisor:
    def __init__(
        self,
        load_event: LoadEvent,
        submit: Submit,
        publish: Publish,
        *,
        idle_seconds: float = IDLE_RETIRE_SECONDS,
        mailbox_size: int = MAILBOX_SIZE,
        is_watched: Callable[[uuid.UUID], bool] = lambda event_id: False,
        is_followed: Callable[[uuid.UUID], bool] = lambda event_id: False,
        peers: Peers | None = None,
        cache: EventCache | None = None,
    ) -> None:
        self._load_event = load_event
        self._submit = submit
        self._publish = publish
        self._is_followed = is_followed
        self._peers = peers
        self._cache = cache
        self._idle_seconds = idle_seconds
        self._is_watched = is_watched
        self._mailbox_size = mailbox_size
        self._slots: dict[uuid.UUID, _Slot] = {}
        self._hydrating: dict[uuid.UUID, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        self._hydrations = 0
        self._retirements = 0
        self._restarts = 0
        self._outcomes: collections.Counter[str] = collections.Counter()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    # --- asking actors ---------------------------------------------------------

    async def ask(self, event_id: uuid.UUID, make: Callable[[m.Reply[T]], m.Message]) -> T:
        """Send the message ``make(reply)`` to the event's actor; return its answer."""
        while True:
            slot = await self._slot(event_id)
            reply: m.Reply[T] = m.Reply()
            try:
                await slot.send.send(make(reply))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                continue  # it retired between lookup and send; wake it again
            return await reply.wait()

    def tell(self, event_id: uuid.UUID, message: m.Notice) -> None:
        """Give a live actor news without waiting; a retired one reads it from the database.

        A full mailbox gets the news by a task that waits for room: dropped,
        it would leave a version no stream ever sees.
        """
        slot = self._slots.get(event_id)
        if slot is None:
            return
        try:
            slot.send.send_nowait(message)
        except trio.WouldBlock:
            assert self._nursery is not None
            self._nursery.start_soon(self._deliver_later, slot, message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    @staticmethod
    async def _deliver_later(slot: _Slot, message: m.Notice) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await slot.send.send(message)

    async def watch(self, event_id: uuid.UUID) -> EventActor:
        """The event's live actor, for a stream to take its snapshot and replay from."""
        return (await self._slot(event_id)).actor

    async def get_event(self, event_id: uuid.UUID) -> Event:
        """The event as its actor holds it: no query for a live event."""
        return (await self._slot(event_id)).actor.state

    async def get_event_json(self, event_id: uuid.UUID) -> bytes:
        """The event's JSON: from the shared cache when there is one, else from its actor.

        With several daemons the cache is the freshest copy: every change is
        written through it before it is acknowledged. A miss is filled from
        the actor.
        """
        if self._cache is not None and self._cache.enabled:
            cached = await self._cache.lookup(event_id)
            if cached == GONE:
                raise NotFound(f"Event {event_id} does not exist.")
            if cached is not None:
                return cached
            event = await self.get_event(event_id)
            await self._cache.store(event)
            return event.json_bytes
        return (await self.get_event(event_id)).json_bytes

    def announce_new_event(self, event: Event) -> None:
        """Start the actor of an event just created here; it publishes ``newEvent``."""
        if event.id not in self._slots:
            self._spawn(event, published=event.version - 1).actor.announce()

    def deliver_remote(self, change: Change) -> None:
        """A change made through another daemon, for this event's actor here.

        A live actor takes it; an event nobody here follows needs nothing; one
        followed only by the all-events streams gets an actor made from the
        change itself, without a query.
        """
        if change.event.id not in self._slots:
            if not self._is_followed(change.event.id) or change.event.id in self._hydrating:
                return
            self._spawn(change.event, published=change.seq - 1)
        self.tell(change.event.id, m.Remote(change))

    def resync(self) -> None:
        """Reload every live actor: changes made elsewhere may have been missed."""
        assert self._nursery is not None
        for event_id in list(self._slots):
            self._nursery.start_soon(self._resync_one, event_id)

    async def _resync_one(self, event_id: uuid.UUID) -> None:
        with contextlib.suppress(Exception):
            await self.ask(event_id, lambda reply: m.Reload(reply))

    # --- lifecycle -------------------------------------------------------------

    async def _slot(self, event_id: uuid.UUID) -> _Slot:
        while True:
            slot = self._slots.get(event_id)
            if slot is not None:
                return slot
            loading = self._hydrating.get(event_id)
            if loading is not None:
                await loading.wait()
                continue
            loading = self._hydrating[event_id] = trio.Event()
            try:
                event = await self._load_event(event_id)
                if event is None:
                    raise NotFound(f"Event {event_id} does not exist.")
                self._hydrations += 1
                return self._spawn(event)
            finally:
                del self._hydrating[event_id]
                loading.set()

    def _spawn(self, event: Event, *, published: int | None = None) -> _Slot:
        assert self._nursery is not None, "Supervisor.run() is not running"
        send, receive = trio.open_memory_channel[m.Message](self._mailbox_size)
        slot = _Slot(self._new_actor(event, published), send, receive)
        self._slots[event.id] = slot
        self._nursery.start_soon(self._supervise, slot, name=f"event-actor {event.id}")
        return slot

    def _new_actor(self, event: Event, published: int | None = None) -> EventActor:
        return EventActor(
            event,
            self._submit,
            self._publish,
            self._load_event,
            self._peers,
            published=published,
            outcomes=self._outcomes,
        )

    def _may_retire(self, slot: _Slot) -> bool:
        # Runs without a checkpoint: no sender can slip in between the check
        # and the close, and a sender holding the old slot gets a closed
        # channel and asks again.
        if slot.receive.statistics().current_buffer_used:
            return False
        if self._is_watched(slot.actor.state.id):
            return False  # a stream is open on it: keep its replay buffer
        self._forget(slot)
        self._retirements += 1
        return True

    def _forget(self, slot: _Slot) -> None:
        """Take the actor out of service; anything still in its mailbox is for a gone event."""
        event_id = slot.actor.state.id
        if self._slots.get(event_id) is slot:
            del self._slots[event_id]
        while True:
            try:
                message = slot.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if not isinstance(message, m.Notice):
                message.reply.fail(NotFound(f"Event {event_id} does not exist."))
        slot.receive.close()

    async def _supervise(self, slot: _Slot) -> None:
        event_id = slot.actor.state.id
        while True:
            try:
                await slot.actor.run(
                    slot.receive, self._idle_seconds, lambda: self._may_retire(slot)
                )
            except Exception:
                log.exception("event actor %s crashed; restarting it", event_id)
                for message in slot.actor.in_hand:
                    if not isinstance(message, m.Notice):
                        message.reply.fail(ActorCrashed("The request failed; please retry."))
                if not await self._restart(slot):
                    return
                continue
            if slot.actor.deleted:
                self._forget(slot)
            return

    async def _restart(self, slot: _Slot) -> bool:
        """Reload the crashed actor's event and give the slot a fresh actor.

        Crashes in quick succession back off; a crash long after the last one
        restarts at once. Returns False when the event is gone.
        """
        event_id = slot.actor.state.id
        self._restarts += 1
        now = trio.current_time()
        if now - slot.last_crash > RESTART_WINDOW_SECONDS:
            slot.restarts = 0
        slot.last_crash = now
        backoff = RESTART_BACKOFF_SECONDS[min(slot.restarts, len(RESTART_BACKOFF_SECONDS) - 1)]
        slot.restarts += 1
        while True:
            await trio.sleep(backoff)
            try:
                event = await self._load_event(event_id)
                break
            except Exception as exc:  # the database's trouble must not stop the supervisor
                if not isinstance(exc, Unavailable):
                    log.exception("reloading event %s after a crash failed", event_id)
                backoff = RESTART_BACKOFF_SECONDS[-1]
        if event is None:
            slot.actor.deleted = True
            self._forget(slot)
            return False
        slot.actor = self._new_actor(event)
        return True

    def statistics(self) -> SupervisorStatistics:
        return SupervisorStatistics(
            live_actors=len(self._slots),
            hydrations=self._hydrations,
            retirements=self._retirements,
            restarts=self._restarts,
            outcomes=dict(self._outcomes),
        )

