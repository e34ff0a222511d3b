"""Supervisor: finds, wakes, retires and restarts event actors.

Every request for an event goes through :meth:`Supervisor.ask`, which finds
the event's actor (hydrating it from the database on first use), puts the
message in its bounded mailbox and awaits the reply. A live actor is dormant —
its state and an empty mailbox, no task — until a message arrives; then the
supervisor gives it a turn (:meth:`Supervisor._wake`): registrations and
cancellations join the next round (``eventd.actors.rounds``), anything else
runs in a task in the supervisor's nursery, which ends when the mailbox is
empty again or registrations are first in it. Either way an actor has one
turn under way at most. A crashed actor is logged, answered for, reloaded
from the database and started again on the same mailbox, and nothing else
notices. One sweep, not a timer per actor, retires the actors dormant for
``idle_seconds``, so memory follows the working set.

The events' hold and offer timers (``eventd.actors.expiries``) are the
supervisor's too: an actor arms its event's, and when one fires the
supervisor sends the actor (hydrated again if it was retired) an
``Expire``. At start, and every ``EXPIRY_RESCAN_SECONDS`` after, it reads
which events have holds pending (``pending_expiries``) and arms their
timers: holds overdue while no daemon ran are expired at once, and holds
made through another daemon expire here too should that daemon stop.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import functools
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import trio

from eventd.actors import messages as m
from eventd.actors.event_actor import EventActor, Offer, Peers, Publish
from eventd.actors.expiries import Expiries
from eventd.actors.mailbox import Mailbox, MailboxClosed
from eventd.actors.rounds import Member, Rounds, RoundStatistics
from eventd.errors import EventdError, InternalError, NotFound, Unavailable
from eventd.model import Event
from eventd.realtime.changes import Change
from eventd.storage import commands as c
from eventd.storage.writer import WriteCommand

log = logging.getLogger(__name__)

T = TypeVar("T")

MAILBOX_SIZE = 1024
RESYNC_CONCURRENCY = 16  # reloads at once after Redis was away (one query each)
IDLE_RETIRE_SECONDS = 300.0
RESTART_BACKOFF_SECONDS = (0.0, 0.05, 0.2, 1.0)
# A crash this long after the previous one counts as the first again.
RESTART_WINDOW_SECONDS = 60.0
# Sweeps for idle actors are at least this fraction of ``idle_seconds`` apart:
# an actor retires between 1 and 1.1 × ``idle_seconds`` after its last message.
SWEEP_SPACING = 0.1
# Actors looked at between two checkpoints of a sweep.
SWEEP_CHUNK = 1000

# How often the events with pending holds are read again (see the module docstring).
EXPIRY_RESCAN_SECONDS = 30.0
# How long a timer whose expiry failed (the database away) waits to try again.
EXPIRY_RETRY_SECONDS = 1.0

LoadEvent = Callable[[uuid.UUID], Awaitable[Event | None]]
PendingExpiries = Callable[[], Awaitable[list[tuple[uuid.UUID, datetime]]]]


class ActorCrashed(InternalError):
    pass


class _Slot:
    """A live actor, its mailbox and its supervision; the mailbox outlives a crash of the actor."""

    __slots__ = ("actor", "mailbox", "awake", "idle_since", "restarts", "last_crash")

    def __init__(self, actor: EventActor, mailbox: Mailbox, now: float) -> None:
        self.actor = actor
        self.mailbox = mailbox
        self.awake = False  # has a turn under way (in a task, or at the writer)
        self.idle_since = now  # when its last turn ended (or it was made)
        self.restarts = 0  # crashes in a row, for the backoff
        self.last_crash = -math.inf


class _Hydration:
    """An event being loaded for its first asker; later askers wait for it, then look again."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: Exception | None = None


@dataclasses.dataclass(frozen=True)
class SupervisorStatistics:
    live_actors: int  # hydrated, dormant or not
    awake_actors: int  # with a turn under way at the moment
    hydrations: int
    retirements: int
    restarts: int
    outcomes: dict[str, int]  # registrations and cancellations answered, by outcome
    rounds: RoundStatistics
    # Holds created, confirmed, expired; offers made, claimed, expired; promotions.
    flow: dict[str, int] = dataclasses.field(default_factory=dict)


class Supervisor:
    def __init__(
        self,
        load_event: LoadEvent,
        offer: Offer,
        publish: Publish,
        *,
        idle_seconds: float = IDLE_RETIRE_SECONDS,
        mailbox_size: int = MAILBOX_SIZE,
        is_watched: Callable[[uuid.UUID], bool] = lambda event_id: False,
        is_followed: Callable[[uuid.UUID], bool] = lambda event_id: False,
        peers: Peers | None = None,
        pending_expiries: PendingExpiries | None = None,
    ) -> None:
        self._load_event = load_event
        self._pending_expiries = pending_expiries
        self.expiries = Expiries(self._expiry_due)
        self._offer = offer
        self._publish = publish
        self._is_followed = is_followed
        self._peers = peers
        self._idle_seconds = idle_seconds
        self._is_watched = is_watched
        self._mailbox_size = mailbox_size
        self._slots: dict[uuid.UUID, _Slot] = {}
        self._hydrating: dict[uuid.UUID, _Hydration] = {}
        self._nursery: trio.Nursery | None = None
        self._context: contextvars.Context | None = None  # of run(): see _start
        self._hydrations = 0
        self._retirements = 0
        self._restarts = 0
        self._awake = 0
        self._rounds = Rounds(offer, self)
        self._outcomes: collections.Counter[str] = collections.Counter()
        self._flow: collections.Counter[str] = collections.Counter()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._context = contextvars.copy_context()
            await nursery.start(self._rounds.run)
            await nursery.start(self.expiries.run)
            if self._pending_expiries is not None:
                await nursery.start(self._rescan_expiries)
            task_status.started()
            await self._retire_idle_actors()

    # --- asking actors ---------------------------------------------------------

    async def ask(self, event_id: uuid.UUID, make: Callable[[m.Reply[T]], m.Message]) -> T:
        """Send the message ``make(reply)`` to the event's actor; return its answer."""
        while True:
            slot = self._slots.get(event_id) or await self._slot(event_id)
            reply: m.Reply[T] = m.Reply()
            try:
                await slot.mailbox.put(make(reply))
            except MailboxClosed:
                continue  # it retired between lookup and send; wake it again
            self._wake(slot)
            return await reply.wait()

    def tell(self, event_id: uuid.UUID, message: m.Notice) -> None:
        """Give a live actor news without waiting; a retired one reads it from the database.

        A full mailbox takes the news over its bound: dropped, it would leave
        a version no stream ever sees.
        """
        slot = self._slots.get(event_id)
        if slot is None:
            return
        slot.mailbox.put_notice(message)
        self._wake(slot)

    async def watch(self, event_id: uuid.UUID) -> EventActor:
        """The event's live actor, for a stream to take its snapshot and replay from."""
        return (await self._slot(event_id)).actor

    async def get_event(self, event_id: uuid.UUID) -> Event:
        """The event as its actor holds it: no query for a live event."""
        return (await self._slot(event_id)).actor.state

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

    # --- changes whose news the actors must hear ------------------------------

    async def create_event(self, event_id: uuid.UUID, fields: c.EventFields) -> Event:
        """Create an event; once it is committed its new actor announces it (``newEvent``)."""
        return await self._detached(self._create_event, event_id, fields)

    async def _create_event(self, event_id: uuid.UUID, fields: c.EventFields) -> Event:
        event: Event = await self._submit(c.CreateEvent(event_id, fields))
        self.announce_new_event(event)
        return event

    async def delete_attendee(self, attendee_id: uuid.UUID) -> None:
        """Delete an attendee; each event whose registration it cancelled adopts the counts."""
        await self._detached(self._delete_attendee, attendee_id)

    async def _delete_attendee(self, attendee_id: uuid.UUID) -> None:
        result: c.AttendeeDeleted = await self._submit(c.DeleteAttendee(attendee_id))
        for counts, _promoted, next_expiry in result.changes:
            self.tell(counts.event_id, m.CountsChanged(counts))
            if next_expiry is not None:  # seats offered
                self.expiries.arm(counts.event_id, next_expiry, earlier_only=True)

    async def _submit(self, command: WriteCommand[T]) -> T:
        self._offer(command)
        return await command.reply.wait()

    async def _detached(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """``fn(*args)`` in a task of the supervisor's; its answer.

        For a change whose news must reach the actors after COMMIT even when
        the asker gives up before then.
        """
        reply: m.Reply[T] = m.Reply()

        async def run() -> None:
            try:
                reply.set(await fn(*args))
            except EventdError as exc:
                reply.fail(exc)
            except Exception:
                log.exception("%s failed", getattr(fn, "__name__", fn))
                reply.fail(InternalError("The change failed; please retry."))

        self._start(run, name=getattr(fn, "__name__", "detached"))
        return await reply.wait()

    async def resync(self) -> None:
        """Reload every live actor, and wait for it: changes made elsewhere may have been missed."""
        limiter = trio.CapacityLimiter(RESYNC_CONCURRENCY)
        async with trio.open_nursery() as nursery:
            for event_id in list(self._slots):
                nursery.start_soon(self._resync_one, event_id, limiter, name=f"resync {event_id}")

    async def _resync_one(self, event_id: uuid.UUID, limiter: trio.CapacityLimiter) -> None:
        async with limiter:
            with contextlib.suppress(Exception):
                await self.ask(event_id, lambda reply: m.Reload(reply))

    # --- expiries ----------------------------------------------------------------

    def _expiry_due(self, event_id: uuid.UUID) -> None:
        self._start(self._expire, event_id, name=f"expire {event_id}")

    async def _expire(self, event_id: uuid.UUID) -> None:
        """Send the event's actor an Expire; it arms its next timer from the answer."""
        try:
            await self.ask(event_id, lambda reply: m.Expire(reply))
        except NotFound:
            self.expiries.arm(event_id, None)  # the event is gone, and its holds with it
        except EventdError as exc:
            log.warning("holds of event %s not expired yet: %s", event_id, exc.detail)
            self.expiries.arm_at(event_id, trio.current_time() + EXPIRY_RETRY_SECONDS,
                                 earlier_only=True)

    async def _rescan_expiries(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Arm every event with a pending hold, at start and every EXPIRY_RESCAN_SECONDS."""
        assert self._pending_expiries is not None
        first = True
        while True:
            try:
                pending = await self._pending_expiries()
            except EventdError as exc:
                log.warning("pending holds not read: %s", exc.detail)
                pending = []
            for event_id, at in pending:
                self.expiries.arm(event_id, at, earlier_only=True)
            if first:
                log.info("hold and offer timers armed for %d event(s)", len(pending))
                task_status.started()
                first = False
            await trio.sleep(EXPIRY_RESCAN_SECONDS)

    # --- lifecycle -------------------------------------------------------------

    async def _slot(self, event_id: uuid.UUID) -> _Slot:
        while True:
            slot = self._slots.get(event_id)
            if slot is not None:
                return slot
            hydration = self._hydrating.get(event_id)
            if hydration is not None:
                await hydration.done.wait()
                continue  # its error is its first asker's; the others try again
            hydration = self._hydrating[event_id] = _Hydration()
            self._start(self._hydrate, event_id, hydration, name=f"hydrate {event_id}")
            await hydration.done.wait()
            if hydration.error is not None:
                raise hydration.error

    async def _hydrate(self, event_id: uuid.UUID, hydration: _Hydration) -> None:
        """Load an event and make its dormant actor, in a task of the supervisor's.

        Not in the asking request's task: the database adapter's asyncio
        timers keep the context of the task that queried for up to minutes,
        and with it the request (see :meth:`_start`). An asker that gives up
        meanwhile does not waste the load.
        """
        try:
            event = await self._load_event(event_id)
        except Exception as exc:
            hydration.error = exc
        else:
            if event is None:
                hydration.error = NotFound(f"Event {event_id} does not exist.")
            elif event_id not in self._slots:  # not announced meanwhile
                self._hydrations += 1
                self._spawn(event)
        finally:
            del self._hydrating[event_id]
            if hydration.error is None and event_id not in self._slots:
                hydration.error = Unavailable("The server is shutting down.")  # cancelled
            hydration.done.set()

    def _spawn(self, event: Event, *, published: int | None = None) -> _Slot:
        """A dormant actor for ``event``: its task starts with its first message."""
        assert self._nursery is not None, "Supervisor.run() is not running"
        slot = _Slot(
            self._new_actor(event, published), Mailbox(self._mailbox_size), trio.current_time()
        )
        self._slots[event.id] = slot
        return slot

    def _wake(self, slot: _Slot) -> None:
        """Give a dormant actor that has messages its turn; an awake one takes them itself."""
        if slot.awake:
            return
        slot.awake = True
        self._awake += 1
        if slot.mailbox.registrations_first():
            self._rounds.join(slot)
        else:
            self._start_task(slot)

    def _start_task(
        self,
        slot: _Slot,
        finish: Callable[[], Awaitable[object]] | None = None,
        *,
        crashed: bool = False,
    ) -> None:
        self._start(
            functools.partial(self._supervise, slot, finish, crashed=crashed),
            name=f"event-actor {slot.actor.state.id}",
        )

    # --- how a round's turns end (eventd.actors.rounds.Supervision) -------------

    def turn_over(self, member: Member) -> None:
        """A turn without a task is over: the actor is dormant, or takes what came meanwhile."""
        assert isinstance(member, _Slot)
        self._next_turn(member, trio.current_time())

    def finish_in_task(self, member: Member, finish: Callable[[], Awaitable[object]]) -> None:
        assert isinstance(member, _Slot)
        self._start_task(member, finish)

    def crashed(self, member: Member) -> None:
        assert isinstance(member, _Slot)
        self._crashed(member)
        self._start_task(member, crashed=True)

    def _next_turn(self, slot: _Slot, now: float) -> None:
        """The actor's turn is over (at ``now``, trio's clock).

        The actor is dormant, or takes what came meanwhile.
        """
        self._rest(slot, now)
        if (slot.mailbox or slot.actor.holds_changes) and not slot.mailbox.closed:
            self._wake(slot)

    def _rest(self, slot: _Slot, now: float) -> None:
        """The actor's turn is over at ``now`` (deleted, or its mailbox empty): it is dormant."""
        slot.actor.in_hand = ()
        slot.awake = False
        slot.idle_since = now
        self._awake -= 1
        if slot.actor.deleted:
            self._forget(slot)

    def _start(self, fn: Callable[..., Awaitable[object]], *args: object, name: str) -> None:
        """Start a task in the supervisor's nursery, in the supervisor's own context.

        Not the context of the request that happens to call: a task (and
        whatever it hands its context to, such as the database adapter's
        asyncio timers) would keep that request and its connection alive.
        """
        assert self._nursery is not None, "Supervisor.run() is not running"
        assert self._context is not None
        self._context.run(self._nursery.start_soon, fn, *args, name=name)

    def _new_actor(self, event: Event, published: int | None = None) -> EventActor:
        return EventActor(
            event,
            self._offer,
            self._publish,
            self._load_event,
            self._peers,
            published=published,
            outcomes=self._outcomes,
            arm_expiry=self.expiries.arm,
            flow=self._flow,
        )

    async def _retire_idle_actors(self) -> None:
        """Sweep for idle actors at the earliest moment one may retire, but not too often."""
        next_sweep = trio.current_time() + self._idle_seconds
        while True:
            await trio.sleep_until(next_sweep)
            earliest = await self._sweep()
            spacing = self._idle_seconds * SWEEP_SPACING
            next_sweep = max(earliest, trio.current_time() + spacing)

    async def _sweep(self) -> float:
        """Retire every actor dormant for ``idle_seconds`` and not watched by a stream.

        Returns when the next one may retire. Each actor is looked at and
        retired without a checkpoint in between: a dormant actor has no
        sender waiting, and a sender that comes later finds it gone (or its
        mailbox closed) and wakes it again.
        """
        now = trio.current_time()
        earliest = now + self._idle_seconds
        for count, slot in enumerate(list(self._slots.values()), 1):
            if count % SWEEP_CHUNK == 0:
                await trio.lowlevel.checkpoint()  # a hundred thousand actors take a while
            event_id = slot.actor.state.id
            if slot.awake or self._slots.get(event_id) is not slot:
                continue
            retire_at = slot.idle_since + self._idle_seconds
            if retire_at > now:
                earliest = min(earliest, retire_at)
            elif not self._is_watched(event_id):  # a watched one keeps its replay buffer
                self._forget(slot)
                self._retirements += 1
        return earliest

    def _forget(self, slot: _Slot) -> None:
        """Take the actor out of service; anything still in its mailbox is for a gone event."""
        event_id = slot.actor.state.id
        if self._slots.get(event_id) is slot:
            del self._slots[event_id]
        for message in slot.mailbox.close():
            if not isinstance(message, m.Notice):
                message.reply.fail(NotFound(f"Event {event_id} does not exist."))

    async def _supervise(
        self,
        slot: _Slot,
        finish: Callable[[], Awaitable[object]] | None = None,
        *,
        crashed: bool = False,
    ) -> None:
        """Run the actor until it is dormant again (or deleted); restart it if it crashes.

        ``finish``: a turn that had to wait for something after COMMIT, done
        before the actor's loop. ``crashed``: the actor crashed in a turn
        without a task, and is restarted first.
        """
        try:
            while True:
                try:
                    if crashed:
                        crashed = False
                        if not await self._restart(slot):
                            return
                    if finish is not None:
                        step, finish = finish, None
                        await step()
                    await slot.actor.run(slot.mailbox)
                except Exception:
                    self._crashed(slot)
                    crashed = True
                    continue
                return
        finally:
            # No checkpoint since the actor found its mailbox empty (the next
            # message gives it a new turn) or registrations first in it.
            self._next_turn(slot, trio.current_time())

    def _crashed(self, slot: _Slot) -> None:
        """Log the crash (in an ``except`` block) and answer what the actor had in hand."""
        log.exception("event actor %s crashed; restarting it", slot.actor.state.id)
        self._restarts += 1
        for message in slot.actor.in_hand:
            if not isinstance(message, m.Notice):
                message.reply.fail(ActorCrashed("The request failed; please retry."))
        slot.actor.in_hand = ()

    async def _restart(self, slot: _Slot) -> bool:
        """Reload the crashed actor's event and give the slot a fresh actor.

        Crashes in quick succession back off; a crash long after the last one
        restarts at once. Returns False when the event is gone.
        """
        event_id = slot.actor.state.id
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
            awake_actors=self._awake,
            hydrations=self._hydrations,
            retirements=self._retirements,
            restarts=self._restarts,
            outcomes=dict(self._outcomes),
            rounds=self._rounds.statistics(),
            flow=dict(self._flow),
        )
