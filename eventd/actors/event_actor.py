"""EventActor: the one owner of one live event.

An actor holds its event's state (fields, counts, version) and is the only
code that changes it. A dormant actor is its state and nothing else, so
memory follows the number of live events, not the number of tasks.

Registrations, cancellations, confirmations and expiries take one path,
whatever else is configured: when they are first in the mailbox, the
supervisor puts the actor in the next round (``eventd.actors.rounds``). The
round takes the actor's turn (:meth:`EventActor.registration_turn`: plain ops
for the writer), sends one
command for every actor in it, and hands each actor the writer's plain results
after COMMIT (:meth:`EventActor.registrations_committed`): the actor adopts
the database's counts, publishes one change per new version and answers each
request. Everything else — edits, deletion, reloads, news from other daemons,
and a turn that must wait for something after COMMIT — runs in a task the
supervisor starts for the actor (:meth:`EventActor.run`), which ends when the
mailbox is empty or registrations are first in it again.

The actor's own check (has the event started?) is the fast path that spares
the database a round trip; the database checks everything under the event's
row lock, and its answer is the one the client gets.

Holds and offers expire at their ``expiresAt``: the actor keeps the moment
its event's next one is due (``next_expiry``, from the database's answers)
and hands it to its timer (``arm_expiry``, the supervisor's
``eventd.actors.expiries``), which sends the actor an :class:`~m.Expire` then;
the expiry takes the registration path like any other change.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import trio

from eventd.actors import messages as m
from eventd.actors.mailbox import Mailbox
from eventd.errors import (
    AlreadyRegistered,
    EventdError,
    EventFull,
    EventStarted,
    HoldExpired,
    NotFound,
    NotHeld,
    Unavailable,
    gate_refusal,
)
from eventd.model import Event, EventCounts, Registration, utc_now
from eventd.realtime.changes import Change, ChangeType
from eventd.storage import commands as c
from eventd.storage import tickets as t
from eventd.storage.writer import WriteCommand

log = logging.getLogger(__name__)

# How many messages one turn of the actor takes from its mailbox at most.
MAX_MESSAGES_PER_TURN = 512
# How many of its latest changes an actor keeps for clients resuming a stream.
REPLAY_BUFFER_SIZE = 256
# How long a change waits for the other daemons' earlier changes before it is
# published anyway (their daemon died after COMMIT, or Redis lost a message).
GAP_WAIT_SECONDS = 0.5

Offer = Callable[[WriteCommand[Any]], None]  # queue a command; its reply settles after COMMIT
Publish = Callable[[Change], None]
Load = Callable[[uuid.UUID], Awaitable[Event | None]]
# Tell the timer when the event's next hold or offer expires (None: none is pending).
ArmExpiry = Callable[[uuid.UUID, datetime | None], None]

# Outcomes that are a change of this event: one version each.
_CHANGES = frozenset({
    "confirmed", "held", "waitlisted", "cancelled", "confirmed_hold", "confirmed_offer",
    "hold_expired", "expired",
})
# Outcomes of a cancel, confirm or expire: their next_expiry is the database's word.
_KNOWS_NEXT_EXPIRY = frozenset({
    "cancelled", "unchanged", "confirmed_hold", "confirmed_offer", "already_confirmed",
    "hold_expired", "not_held", "expired", "not_found",
})


def _no_timer(event_id: uuid.UUID, at: datetime | None) -> None:
    pass


class RegistrationTurn(NamedTuple):
    """Registrations and cancellations on their way to the writer, as one part of a command."""

    ops: c.EventOps
    asked: list[m.RegistrationRequest]  # in the order of ops.ops

    def fail(self, error: BaseException) -> None:
        for request in self.asked:
            request.reply.fail(error)


@dataclasses.dataclass(frozen=True)
class Peers:
    """The other daemons on this database, reached through Redis (None without it)."""

    share: Callable[[Change], None]  # our change, for their actors and streams
    store: Callable[[Event], Awaitable[None]]  # write an event through the shared cache
    store_gone: Callable[[uuid.UUID], Awaitable[None]]


class EventActor:
    """See the module docstring.

    One actor per live event, a hundred thousand of them: its fields are
    slots, and its replay buffer is made on its first change.

    With peers, changes reach this actor from two places — its own commits and
    the relay — and not always in ``seq`` order: another daemon's change may
    commit before ours and arrive after it. The actor publishes changes in
    ``seq`` order, holding one that comes early until the ones before it
    arrive, or for ``GAP_WAIT_SECONDS`` at most.
    """

    __slots__ = (
        "state",
        "deleted",
        "in_hand",
        "_offer",
        "_publish",
        "_load",
        "_peers",
        "_outcomes",
        "_replay",
        "_published",
        "_held",
        "_held_since",
        "_arm_expiry",
        "next_expiry",
        "_flow",
    )

    def __init__(
        self,
        event: Event,
        offer: Offer,
        publish: Publish,
        load: Load,
        peers: Peers | None = None,
        *,
        published: int | None = None,
        outcomes: collections.Counter[str] | None = None,
        arm_expiry: ArmExpiry = _no_timer,
        flow: collections.Counter[str] | None = None,
    ) -> None:
        self.state = event
        self.deleted = False
        # The turn being handled, for the supervisor to answer if the actor crashes.
        self.in_hand: Sequence[m.Message] = ()
        self._offer = offer
        self._publish = publish
        self._load = load
        self._peers = peers
        # Registration outcomes ("confirmed", "event_full", …), counted for /metrics.
        self._outcomes = outcomes if outcomes is not None else collections.Counter()
        # Made on the first change: an event nobody changes costs no buffer.
        self._replay: collections.deque[Change] | None = None
        # The seq of the last change published here, and the ones held back.
        self._published = event.version if published is None else published
        self._held: dict[int, Change] = {}
        self._held_since = math.inf
        self._arm_expiry = arm_expiry
        # Holds and offers made, confirmed and expired, counted for /metrics.
        self._flow = flow if flow is not None else collections.Counter()
        # When the event's next hold or offer expires, as the database last said.
        self.next_expiry: datetime | None = None
        self._expect_expiry(event.next_expiry)

    def changes_since(self, seq: int) -> list[Change] | None:
        """Every change after ``seq``, or None when they are not all held."""
        if seq == self.state.version:
            return []
        if seq > self.state.version or not self._replay or self._replay[0].seq > seq + 1:
            return None
        return [change for change in self._replay if change.seq > seq]

    # --- the loop -------------------------------------------------------------

    async def run(self, mailbox: Mailbox) -> None:
        """Handle the mailbox a turn at a time until it is empty, registrations are
        first in it (their turn is a round's), or the event is deleted.

        The actor then has no task — it is dormant or in a round — until the
        supervisor starts one for its next message. A change held back for an
        earlier one keeps the task waiting until it is released,
        ``GAP_WAIT_SECONDS`` at most: nobody else would wake a dormant actor
        to release it.
        """
        to_round = False
        try:
            while not self.deleted:
                if mailbox.registrations_first():
                    to_round = True  # what is held waits: the round's turn comes back here
                    return
                if mailbox:
                    turn = mailbox.take_others(MAX_MESSAGES_PER_TURN)
                    self.in_hand = turn
                    await self._handle_turn(turn)
                    self.in_hand = ()
                elif self._held:
                    gap_at = self._held_since + GAP_WAIT_SECONDS
                    await mailbox.wait(gap_at)
                    if trio.current_time() >= gap_at:
                        self._release_held()  # what we waited for is not coming
                else:
                    return
        finally:
            if not to_round:
                self._release_held()

    @property
    def holds_changes(self) -> bool:
        """Changes wait for earlier ones from other daemons: :meth:`run` releases them."""
        return bool(self._held)

    async def _handle_turn(self, turn: list[m.Message]) -> None:
        check_ins: list[m.CheckIn] = []  # those in a row go to the writer together
        for message in turn:
            if isinstance(message, m.CheckIn):
                check_ins.append(message)
                continue
            if check_ins:
                await self._check_in(check_ins)
                check_ins = []
            if isinstance(message, m.Remote):
                self._take_remote(message.change)
            elif self.deleted:
                _fail_gone(message, self.state)
            elif isinstance(message, m.CountsChanged):
                self._adopt(message.counts)
            elif isinstance(message, m.UpdateEvent):
                await self._update(message)
            elif isinstance(message, m.DeleteEvent):
                await self._delete(message)
            elif isinstance(message, m.Reload):
                await self._reload(message)
        if check_ins:
            await self._check_in(check_ins)

    # --- registrations and cancellations -------------------------------------

    def registration_turn(
        self, requests: list[m.RegistrationRequest], now: datetime, clock: float
    ) -> RegistrationTurn | None:
        """The writer's command for these requests; None when none is left for it.

        Those the actor can answer itself (the event has started by ``now``,
        or is gone) are answered here; so are those whose asker's deadline
        (``clock``, trio's) has passed, unwritten: nobody would hear the answer.

        Confirms go first, the rest after them in the order they came. The
        requests of one turn are concurrent, so any order is one they could
        have arrived in; a confirm moves a seat from held to confirmed and
        frees none (unless it is late: then the due holds expire, and their
        seats go to the waitlist either way). Among registrations a confirm
        would end the database's set-wise run (``eventd_registration_batch``):
        a hold-then-confirm rush would register one at a time.
        """
        if self.deleted:
            for request in requests:
                _fail_gone(request, self.state)
            return None
        ops: list[c.RegistrationOp] = []
        asked: list[m.RegistrationRequest] = []
        confirm_ops: list[c.RegistrationOp] = []
        confirms: list[m.RegistrationRequest] = []
        for request in requests:
            if request.deadline <= clock:
                self._outcomes["timed_out"] += 1
                request.reply.fail(Unavailable(
                    f"Event {self.state.id} was busy until the request's deadline; please retry."
                ))
                continue
            if isinstance(request, m.Register):
                if self.state.starts_at <= now:
                    self._outcomes["event_started"] += 1
                    request.reply.fail(_event_started(self.state))
                    continue
                # A full event still goes to the database: an attendee who already
                # holds a registration (a client retrying after a timeout) must hear
                # already_registered, not event_full.
                ops.append(
                    c.RegistrationOp(
                        "register", request.registration_id, request.attendee_id,
                        request.waitlist, request.hold, request.by_email, request.admission,
                    )
                )
            elif isinstance(request, m.Cancel):
                ops.append(c.RegistrationOp("cancel", request.registration_id))
            elif isinstance(request, m.Confirm):
                confirm_ops.append(c.RegistrationOp("confirm", request.registration_id))
                confirms.append(request)
                continue
            else:
                ops.append(c.RegistrationOp("expire", None))
            asked.append(request)
        if confirms:
            ops, asked = confirm_ops + ops, confirms + asked
        if not ops:
            return None
        return RegistrationTurn(c.EventOps(self.state.id, ops), asked)

    def registrations_committed(self, turn: RegistrationTurn, results: list[c.OpResult]) -> bool:
        """Adopt the counts, publish, answer — when that needs no waiting.

        False, having done nothing, when it does: another daemon edited the
        event (it must be reloaded), or there are peers (the shared cache is
        written first). :meth:`finish_registrations` then does it in the
        actor's task.
        """
        if self._peers is not None or self._edited_elsewhere(results):
            return False
        self._take_results(results)
        self._answer_turn(turn, results)
        return True

    async def finish_registrations(
        self, turn: RegistrationTurn, results: list[c.OpResult]
    ) -> None:
        """Adopt the counts, publish, answer: whatever it takes."""
        if self._edited_elsewhere(results):
            await self._refresh(results)
        else:
            self._take_results(results)
        await self._store()
        self._answer_turn(turn, results)

    def _take_results(self, results: list[c.OpResult]) -> None:
        if self._changed_elsewhere(results):
            self._adopt_among_others(results)
        else:
            for result in results:
                if result.counts is not None:
                    self._adopt(result.counts)
        self._take_expiries(results)

    def _take_expiries(self, results: list[c.OpResult]) -> None:
        """Follow the event's next expiry through the results, in their order."""
        next_expiry = self.next_expiry
        changed = False
        for result in results:
            if result.outcome in _KNOWS_NEXT_EXPIRY:
                next_expiry, changed = result.next_expiry, True
            elif result.expires_at is not None:  # a new hold
                if next_expiry is None or result.expires_at < next_expiry:
                    next_expiry, changed = result.expires_at, True
        if changed:
            self._expect_expiry(next_expiry, always=True)

    def _expect_expiry(self, at: datetime | None, *, always: bool = False) -> None:
        """The event's next hold or offer expires ``at``: (re-)arm the timer."""
        if at is None and not always:
            return
        self.next_expiry = at
        self._arm_expiry(self.state.id, at)

    def _answer_turn(self, turn: RegistrationTurn, results: list[c.OpResult]) -> None:
        for request, result in zip(turn.asked, results, strict=True):
            self._answer(request, result)

    def _changed_elsewhere(self, results: list[c.OpResult]) -> bool:
        """Did the database's version move further than these results account for?

        Another daemon on the same database changed the event. (Loops, not
        comprehensions: this runs for every turn, most of them of one result.)
        """
        newest = own = 0
        for result in results:
            if result.outcome in _CHANGES:
                own += 1
            if result.counts is not None and result.counts.version > newest:
                newest = result.counts.version
        return newest > self.state.version + own

    def _edited_elsewhere(self, results: list[c.OpResult]) -> bool:
        """Did another daemon edit the event's fields since the version we hold?"""
        version = self.state.version
        for result in results:
            if result.counts is not None and result.counts.edited_version > version:
                return True
        return False

    def _adopt_among_others(self, results: list[c.OpResult]) -> None:
        """Publish our changes when other daemons' registrations came between them.

        Their changes moved only the counts, which ours carry: no reload.
        Each of ours is published at its own ``seq``; theirs reach this
        daemon's streams through the relay, or without one as gaps — collapsed
        capacity updates, the next one carrying the counts.
        """
        for result in results:
            if result.counts is not None:
                self.state = self.state.with_counts(result.counts)
        self._publish_own(results)

    def _publish_own(self, results: list[c.OpResult]) -> None:
        """Each of our changes as a capacity update at its own seq, with the fields we hold."""
        for result in results:
            if result.counts is not None and result.outcome in _CHANGES:
                counts = result.counts
                self._emit("eventCapacityUpdate", self.state.at_counts(counts), counts.version,
                           counts.updated_at)

    async def _refresh(self, results: list[c.OpResult]) -> None:
        """Reload the event after another daemon edited it, then publish ours.

        With peers, their changes come through the relay and ours are
        published as capacity updates in between. Without, nobody will tell
        us what they were: the reloaded event is published as one update.
        """
        fresh = await self._load(self.state.id)
        if fresh is None:
            self._gone()
            return
        if fresh.version <= self.state.version:
            return
        self.state = fresh
        if self._peers is None:
            self._emit("eventUpdated", fresh, fresh.version)
            return
        self._publish_own(results)

    async def _reload(self, request: m.Reload) -> None:
        """Catch up with the database after missing news; a newer event is one update."""
        try:
            fresh = await self._load(self.state.id)
        except EventdError as exc:
            request.reply.fail(exc)
            return
        await self._take_over(fresh)
        request.reply.set(None)

    async def _take_over(self, fresh: Event | None) -> None:
        """The database's event in place of ours: gone, or a newer one as one update."""
        if fresh is None:
            self._gone()
        elif fresh.version > self.state.version:
            self.state = fresh
            self._sequence(Change("eventUpdated", fresh, fresh.version, utc_now()))
            await self._store()

    def _gone(self) -> None:
        """The event was deleted through another daemon."""
        if not self.deleted:
            self.deleted = True
            self._emit("eventDeleted", self.state, self.state.version + 1)

    def _answer(self, request: m.RegistrationRequest, result: c.OpResult) -> None:
        event = self.state
        self._outcomes[result.outcome] += 1
        self._count_flow(result.outcome, result.promoted, result.expired_holds,
                         result.expired_offers)
        match result.outcome:
            case "confirmed" | "held" | "waitlisted" if isinstance(request, m.Register):
                assert result.created_at is not None
                assert result.counts is not None
                request.reply.set(
                    Registration(
                        id=result.registration_id,
                        event_id=event.id,
                        attendee_id=request.attendee_id,
                        status=result.outcome,
                        waitlist_position=(
                            result.counts.waitlist_count
                            if result.outcome == "waitlisted"
                            else None
                        ),
                        created_at=result.created_at,
                        expires_at=result.expires_at,
                        manage_token=result.token,
                    )
                )
            case "cancelled" | "unchanged" | "expired":
                request.reply.set(result.promoted)
            case "confirmed_hold" | "confirmed_offer" | "already_confirmed":
                # With when it was confirmed: the transaction's now(), the event's
                # updated_at after it.
                assert result.counts is not None
                request.reply.set((result.outcome, result.counts.updated_at))
            case "hold_expired":
                assert isinstance(request, m.Confirm)
                request.reply.fail(HoldExpired(
                    f"Registration {request.registration_id} was not confirmed before it"
                    " expired; its seat is released."
                ))
            case "not_held":
                assert isinstance(request, m.Confirm)
                request.reply.fail(NotHeld(
                    f"Registration {request.registration_id} is not held or offered: only"
                    " a held seat or an offer can be confirmed."
                ))
            case "sales_not_open" | "admission_required" | "admission_used" | "admission_expired":
                refusal = gate_refusal(result.outcome, event.id)
                assert refusal is not None
                request.reply.fail(refusal)
            case "event_full":
                request.reply.fail(_event_full(event))
            case "event_started":
                request.reply.fail(_event_started(event))
            case "already_registered":
                assert isinstance(request, m.Register)
                request.reply.fail(
                    AlreadyRegistered(
                        f"Attendee {request.attendee_id} is already registered for event"
                        f" {event.id}."
                    )
                )
            case "attendee_not_found":
                assert isinstance(request, m.Register)
                request.reply.fail(NotFound(f"Attendee {request.attendee_id} does not exist."))
            case "not_found":
                assert isinstance(request, m.Cancel | m.Confirm)
                request.reply.fail(
                    NotFound(f"Registration {request.registration_id} does not exist.")
                )
            case "event_not_found":
                self._gone()
                _fail_gone(request, event)

    def _count_flow(self, outcome: str, filled: Sequence[uuid.UUID], expired_holds: int = 0,
                    expired_offers: int = 0) -> None:
        flow = self._flow
        if outcome == "held":
            flow["holds_created"] += 1
        elif outcome == "confirmed_hold":
            flow["holds_confirmed"] += 1
        elif outcome == "confirmed_offer":
            flow["offers_claimed"] += 1
        if expired_holds or expired_offers:
            flow["holds_expired"] += expired_holds
            flow["offers_expired"] += expired_offers
        if filled:  # seats from the waitlist: offered, or confirmed at once
            event = self.state
            offered = event.offer_minutes > 0 or event.confirmation == "email"
            flow["offers_made" if offered else "promotions"] += len(filled)

    def _adopt(self, counts: EventCounts) -> None:
        """Take the database's counts if they are news, and tell the hub.

        The change is dated when the database made it (the event's
        ``updated_at`` in that transaction).
        """
        newer = self.state.with_counts(counts)
        if newer is not self.state:
            self.state = newer
            self._emit("eventCapacityUpdate", newer, newer.version, counts.updated_at)

    async def _submit(self, command: WriteCommand[Any]) -> Any:
        self._offer(command)
        return await command.reply.wait()

    # --- check-in ---------------------------------------------------------------

    async def _check_in(self, requests: list[m.CheckIn]) -> None:
        """Let tickets in: one command for the writer, whose guarded UPDATE decides.

        Each request is answered with its :class:`~eventd.storage.tickets.CheckInResult`;
        when anyone came in, the event's new count is published.
        """
        if self.deleted:
            for request in requests:
                _fail_gone(request, self.state)
            return
        clock = trio.current_time()
        live = []
        for request in requests:
            if request.deadline <= clock:  # nobody would hear it: not written
                request.reply.fail(Unavailable(
                    f"Event {self.state.id} was busy until the request's deadline; please retry."
                ))
            else:
                live.append(request)
        if not live:
            return
        try:
            done: t.CheckedIn = await self._submit(
                t.CheckIns(self.state.id, [request.registration_id for request in live])
            )
        except EventdError as exc:
            for request in live:
                request.reply.fail(exc)
            return
        if done.counts is None:
            self._gone()
        else:
            await self._adopt_check_ins(done.counts, done.checked_in_count)
        for request, result in zip(live, done.results, strict=True):
            request.reply.set(result)

    async def _adopt_check_ins(self, counts: EventCounts, checked_in_count: int) -> None:
        if counts.edited_version > self.state.version:  # another daemon edited its fields
            await self._take_over(await self._load(self.state.id))
            return
        newer = self.state.with_counts(counts)
        if newer is self.state:
            return
        self.state = _entered(newer, checked_in_count)
        self._emit("eventCapacityUpdate", self.state, counts.version, counts.updated_at)
        await self._store()

    # --- edits and deletion ---------------------------------------------------

    async def _update(self, request: m.UpdateEvent) -> None:
        try:
            result: c.EventUpdated = await self._submit(
                c.UpdateEvent(self.state.id, request.changes)
            )
        except NotFound as exc:
            self._gone()
            request.reply.fail(exc)
            return
        except EventdError as exc:
            request.reply.fail(exc)
            return
        if not result.edited:  # nothing to change: nothing changes, nobody is told
            if result.current.version > self.state.version:
                self.state = result.current  # news of other daemons, read under the lock
                self._sequence(Change("eventUpdated", result.current, result.current.version,
                                      utc_now()))
            request.reply.set(result.current)
            return
        self.state = result.current
        self._emit("eventUpdated", result.updated, result.updated.version)
        if result.counts_changed:
            self._emit("eventCapacityUpdate", result.current, result.current.version)
            self._expect_expiry(result.current.next_expiry, always=True)  # offers made
            self._count_flow("", result.promoted)
        await self._store()
        request.reply.set(result.current)

    async def _delete(self, request: m.DeleteEvent) -> None:
        try:
            result: c.EventDeleted = await self._submit(c.DeleteEvent(self.state.id))
        except NotFound as exc:
            self._gone()
            request.reply.fail(exc)
            return
        except EventdError as exc:
            request.reply.fail(exc)
            return
        self.deleted = True
        self._emit("eventDeleted", result.event, result.version)
        if self._peers is not None:
            await self._peers.store_gone(self.state.id)
        request.reply.set(None)

    def announce(self) -> None:
        """Publish ``newEvent``: this actor's event was just created here."""
        self._emit("newEvent", self.state, self.state.version, self.state.created_at)

    # --- the other daemons ------------------------------------------------------

    def _take_remote(self, change: Change) -> None:
        """A change made through another daemon: newer state is adopted, and it is published."""
        if change.seq > self.state.version:
            self.state = _entered(change.event, self.state.checked_in_count)
        else:
            self.state = _entered(self.state, change.event.checked_in_count)
        if change.type == "eventDeleted":
            self.deleted = True
        self._sequence(change)

    async def _store(self) -> None:
        """Write the event through the shared cache before anyone hears of the change."""
        if self._peers is not None:
            await self._peers.store(self.state)

    # --- publishing in seq order ------------------------------------------------

    def _emit(
        self, kind: ChangeType, event: Event, seq: int, at: datetime | None = None
    ) -> None:
        change = Change(kind, event, seq, at or utc_now())
        if self._peers is not None:
            self._peers.share(change)  # at once: another daemon may be waiting for it
        self._sequence(change)

    def _sequence(self, change: Change) -> None:
        if change.seq <= self._published:
            return  # published already (ours, relayed back) or superseded
        if self._peers is not None and change.seq > self._published + 1:
            self._held[change.seq] = change  # an earlier change is still on its way
            self._held_since = min(self._held_since, trio.current_time())
            return
        self._release(change)
        while (following := self._held.pop(self._published + 1, None)) is not None:
            self._release(following)
        if not self._held:
            self._held_since = math.inf

    def _release_held(self) -> None:
        """Publish whatever is held, in order, accepting the gap."""
        for seq in sorted(self._held):
            self._release(self._held[seq])
        self._held.clear()
        self._held_since = math.inf

    def _release(self, change: Change) -> None:
        self._published = change.seq
        if self._replay is None:
            self._replay = collections.deque(maxlen=REPLAY_BUFFER_SIZE)
        self._replay.append(change)
        self._publish(change)


def _entered(event: Event, checked_in_count: int) -> Event:
    """``event`` with the larger of two accounts of its check-ins: the count only rises,
    and counts that came with a registration's change may lag another daemon's check-in."""
    if checked_in_count <= event.checked_in_count:
        return event
    return dataclasses.replace(event, checked_in_count=checked_in_count)


def _event_full(event: Event) -> EventFull:
    return EventFull(
        f"Event {event.id} has no spots left"
        f" ({event.confirmed_count + event.held_count}/{event.max_attendees})."
    )


def _event_started(event: Event) -> EventStarted:
    return EventStarted(f"Event {event.id} has already started; registration is closed.")


def _fail_gone(message: m.Message, event: Event) -> None:
    if not isinstance(message, m.Notice):
        message.reply.fail(NotFound(f"Event {event.id} does not exist."))
