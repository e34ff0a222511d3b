"""Rounds: the registration turns of many actors, sent to the writer as one command.

An actor whose mailbox starts with registrations or cancellations joins the
next round (:meth:`Rounds.join`). One task (:meth:`Rounds.run`) takes every
actor that joined while the previous round was at the writer and, for each,
its turn: the requests in its mailbox, made into plain ops by the actor
(:meth:`~eventd.actors.event_actor.EventActor.registration_turn`). Those go
down to the writer as one :class:`~eventd.storage.commands.RegistrationOps`;
its plain results come back up after COMMIT, and each actor applies its own
(:meth:`~eventd.actors.event_actor.EventActor.registrations_committed`) in
this task, which is that actor's turn: it adopts the counts, publishes and
answers. So a hot event's requests share a statement, a hundred events' turns
share a transaction, and the next round gathers while one is at the writer.

A round never waits for an event another transaction holds: the database
answers its operations ``busy``, having written nothing, and the actor's
requests go back to the front of its mailbox for a round a moment later —
in their order, each until its asker's deadline (then it is answered
unwritten, 503).

The writer runs nothing of the actors': the round is sealed before it is
offered, and its results are applied here, not in the writer's task.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from eventd.actors import messages as m
from eventd.actors.event_actor import MAX_MESSAGES_PER_TURN, EventActor, Offer, RegistrationTurn
from eventd.actors.mailbox import Mailbox
from eventd.errors import EventdError, Unavailable
from eventd.model import utc_now
from eventd.storage import commands as c

# How long an actor whose event was locked elsewhere waits before its next round.
BUSY_RETRY_SECONDS = 0.01


class Member(Protocol):
    """An actor in a round, as its supervisor keeps it."""

    @property
    def actor(self) -> EventActor: ...

    @property
    def mailbox(self) -> Mailbox: ...


class Supervision(Protocol):
    """What a round tells the actors' supervisor: how each actor's turn ended."""

    def turn_over(self, member: Member) -> None:
        """The actor's turn is done: it rests, or takes what came meanwhile."""

    def finish_in_task(self, member: Member, finish: Callable[[], Awaitable[object]]) -> None:
        """The turn must wait for something after COMMIT: the actor's own task finishes it."""

    def crashed(self, member: Member) -> None:
        """The actor raised (called in the ``except`` block): log, answer, restart it."""


@dataclasses.dataclass(frozen=True)
class RoundStatistics:
    rounds: int  # sent to the writer
    turns: int  # actors' turns in them
    waiting: int  # actors joined for the next round
    carried: int  # actors whose event was busy, waiting to try again


class Rounds:
    def __init__(self, offer: Offer, supervision: Supervision) -> None:
        self._offer = offer
        self._supervision = supervision
        self._send, self._receive = trio.open_memory_channel[Member](math.inf)
        self._rounds = 0
        self._turns = 0
        # Actors whose event another transaction held, and when they try again.
        self._carried: list[tuple[float, Member]] = []

    def join(self, member: Member) -> None:
        """Put an actor whose mailbox starts with registrations in the next round."""
        self._send.send_nowait(member)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with self._receive:
            while True:
                members = self._carried_due()
                if not members:
                    with trio.move_on_at(self._carried[0][0] if self._carried else math.inf):
                        members.append(await self._receive.receive())
                    members += self._carried_due()
                while True:
                    try:
                        members.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                if members:
                    await self._run_round(members)

    def _carried_due(self) -> list[Member]:
        """The actors whose event was busy, due to try again."""
        now = trio.current_time()
        due = [member for at, member in self._carried if at <= now]
        if due:
            self._carried = [(at, member) for at, member in self._carried if at > now]
        return due

    async def _run_round(self, members: list[Member]) -> None:
        turns = self._seal(members)
        if not turns:
            return
        command = c.RegistrationOps([turn.ops for _, turn in turns])
        self._offer(command)
        self._rounds += 1
        self._turns += len(turns)
        try:
            answers = await command.reply.wait()
        except EventdError as exc:
            for member, turn in turns:
                turn.fail(exc)
                self._supervision.turn_over(member)
            return
        except Exception:  # a bug in the command: its actors crashed
            for member, _ in turns:
                self._supervision.crashed(member)
            return
        except BaseException:  # cancelled: the daemon is stopping
            for _, turn in turns:
                turn.fail(Unavailable("The daemon is shutting down."))
            raise
        for (member, turn), results in zip(turns, answers, strict=True):
            if results and results[0].outcome == "busy":
                # Another transaction holds the event: nothing was written. The
                # requests go back to the front of the mailbox, for a later round.
                member.mailbox.put_back(turn.asked)
                member.actor.in_hand = ()
                self._carried.append((trio.current_time() + BUSY_RETRY_SECONDS, member))
                continue
            try:
                done = member.actor.registrations_committed(turn, results)
            except Exception:
                self._supervision.crashed(member)
                continue
            if done:
                self._supervision.turn_over(member)
            else:
                finish = functools.partial(member.actor.finish_registrations, turn, results)
                self._supervision.finish_in_task(member, finish)

    def _seal(self, members: list[Member]) -> list[tuple[Member, RegistrationTurn]]:
        """Take each actor's turn from its mailbox; those it answers itself end here."""
        now, clock = utc_now(), trio.current_time()  # one reading for the round's actors
        turns: list[tuple[Member, RegistrationTurn]] = []
        for member in members:
            requests: list[m.RegistrationRequest] = member.mailbox.take_registrations(
                MAX_MESSAGES_PER_TURN
            )
            member.actor.in_hand = requests
            try:
                turn = member.actor.registration_turn(requests, now, clock)
            except Exception:
                self._supervision.crashed(member)
                continue
            if turn is None:
                self._supervision.turn_over(member)
            else:
                turns.append((member, turn))
        return turns

    def statistics(self) -> RoundStatistics:
        return RoundStatistics(
            rounds=self._rounds,
            turns=self._turns,
            waiting=self._receive.statistics().current_buffer_used,
            carried=len(self._carried),
        )
