"""The Writer: one task that turns many actors' commands into few transactions.

Group commit: the writer takes every command waiting in its inbox (up to
``MAX_BATCH_COMMANDS``), runs them all in one transaction, and delivers each
command's result only after COMMIT. While one transaction runs, the next batch
gathers, so batch size follows load with no timer to tune.

If the batch transaction fails on a statement (a deadlock with another daemon,
say), it is rolled back and each command is run again alone, so one command's
trouble is that command's answer only. If the database is unreachable every
command in the batch gets :class:`eventd.errors.Unavailable`.

The inbox has no bound of its own: everyone who queues a command waits for its
answer — a request, an event actor with at most one command in flight, or the
actors' one round in flight (``eventd.actors.rounds``) — so what waits here is
bounded by the requests and actors there are. A command's result goes back up
only through its reply: the writer runs no code of the layers above it.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import outcome
import trio

from eventd.errors import EventdError, InternalError, Unavailable
from eventd.reply import Reply
from eventd.storage.database import Connection, Database, QueryFailed

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH_COMMANDS = 256
# Deadlock and serialization failures (with another daemon) are worth retrying.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
CONFLICT_RETRY_BACKOFF_SECONDS = (0.0, 0.01, 0.05, 0.2)


class WriteFailed(InternalError):
    """The database refused a change for a reason no client can fix."""


class WriteCommand(Generic[T]):
    """One unit of work. Subclasses implement :meth:`run`.

    Rule: a command may raise an :class:`EventdError` only before it has
    written anything, so answering it with that error leaves the batch's
    transaction sound.
    """

    #: Commands of one class in one batch may be run together by run_batch.
    batch_order: ClassVar[int] = 100
    #: run_batch issues exactly one statement: a batch of this class alone
    #: needs no BEGIN and COMMIT around it, the statement is its own transaction.
    single_statement: ClassVar[bool] = False
    #: The command may write outbox rows (emails, webhooks): its commit wakes the drains.
    #: A batch of commands that never do (the queue's second) leaves them be, so a
    #: daemon with a queue does not look busy to them when nobody registers.
    queues_messages: ClassVar[bool] = True

    def __init__(self) -> None:
        self.reply: Reply[T] = Reply()

    async def run(self, conn: Connection) -> T:
        raise NotImplementedError

    @classmethod
    async def run_batch(
        cls, conn: Connection, commands: Sequence[WriteCommand[Any]]
    ) -> list[outcome.Outcome[Any]]:
        results: list[outcome.Outcome[Any]] = []
        for command in commands:
            try:
                results.append(outcome.Value(await command.run(conn)))
            except Unavailable:
                raise  # the transaction is gone: the whole batch fails
            except EventdError as exc:
                results.append(outcome.Error(exc))
        return results


@dataclasses.dataclass(frozen=True)
class WriterStatistics:
    transactions: int
    commands: int
    largest_batch: int
    batch_size_counts: dict[int, int]  # transactions by batch size, rounded up to a power of 2
    commit_seconds_total: float
    commit_seconds_counts: dict[float, int]  # transactions by latency, rounded up to a bound
    queued: int


#: The upper bounds the commit latencies are counted under.
COMMIT_SECONDS_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                         math.inf)


class Writer:
    def __init__(self, db: Database, on_commit: Callable[[], None] | None = None) -> None:
        self._db = db
        self._on_commit = on_commit  # wake the outbox drains: the batch may have queued rows
        self._send, self._receive = trio.open_memory_channel[WriteCommand[Any]](math.inf)
        self._transactions = 0
        self._commands = 0
        self._largest_batch = 0
        self._batch_size_counts: dict[int, int] = {}
        self._commit_seconds_total = 0.0
        self._commit_seconds_counts = dict.fromkeys(COMMIT_SECONDS_BOUNDS, 0)
        self._held: contextlib.AsyncExitStack | None = None
        self._held_conn: Connection

    async def submit(self, command: WriteCommand[T]) -> T:
        """Queue ``command``; return its result once it is committed."""
        self.offer(command)
        return await command.reply.wait()

    def offer(self, command: WriteCommand[Any]) -> None:
        """Queue ``command`` without waiting: its reply is settled after COMMIT.

        Once the writer is closed the reply fails at once, with
        :class:`~eventd.errors.Unavailable`.
        """
        try:
            self._send.send_nowait(command)
        except trio.ClosedResourceError:
            command.reply.fail(Unavailable("The daemon is shutting down."))

    async def close(self) -> None:
        """Stop taking commands; :meth:`run` finishes what is queued, then returns."""
        await self._send.aclose()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await self._serve()
        finally:
            with trio.CancelScope(shield=True):
                await self._release()

    async def _serve(self) -> None:
        async with self._receive:
            while True:
                try:
                    first = await self._receive.receive()
                except trio.EndOfChannel:
                    return
                batch = [first]
                while len(batch) < MAX_BATCH_COMMANDS:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                # A commit in flight is finished even when the daemon is told
                # to stop: its callers are waiting for the truth.
                with trio.CancelScope(shield=True):
                    await self._commit(batch)

    async def _commit(self, batch: list[WriteCommand[Any]]) -> None:
        started = time.perf_counter()
        try:
            results = await self._run_together(batch)
        except Unavailable as exc:
            for command in batch:
                command.reply.settle(outcome.Error(exc))
            return
        except QueryFailed as exc:
            if len(batch) > 1:
                log.info("batch of %d failed (%s); running each alone", len(batch), exc.sqlstate)
            results = [await self._run_alone(command) for command in batch]
        except Exception:  # a bug in a command: answer everyone, keep writing
            log.exception("writer batch failed")
            results = [await self._run_alone(command) for command in batch]
        self._record(len(batch), time.perf_counter() - started)
        if self._on_commit is not None and any(type(c).queues_messages for c in batch):
            self._on_commit()
        for command, result in zip(batch, results, strict=True):
            command.reply.settle(result)

    @contextlib.asynccontextmanager
    async def _transaction(self, *, one_statement: bool = False) -> AsyncIterator[Connection]:
        """A transaction on the writer's own connection, held across batches.

        Reads share the rest of the pool; a burst of slow list queries can
        never make a commit wait for a connection. A connection that failed is
        given back and a fresh one taken for the next batch.

        ``one_statement``: the batch is one statement, which PostgreSQL runs
        as a transaction of its own — one round trip instead of three (BEGIN,
        the statement, COMMIT). Under load each round trip waits for the
        daemon's event loop to come round to it, so this is most of a hot
        event's commit time.
        """
        if self._held is None:
            stack = contextlib.AsyncExitStack()
            self._held_conn = await stack.enter_async_context(self._db.connection())
            self._held = stack
        try:
            if one_statement:
                yield self._held_conn
            else:
                async with self._held_conn.transaction() as conn:
                    yield conn
        except (Unavailable, QueryFailed):
            await self._release()
            raise

    async def _release(self) -> None:
        if self._held is not None:
            stack, self._held = self._held, None
            await stack.aclose()

    async def _run_together(self, batch: list[WriteCommand[Any]]) -> list[outcome.Outcome[Any]]:
        by_class: dict[type[WriteCommand[Any]], list[int]] = {}
        for index, command in enumerate(batch):
            by_class.setdefault(type(command), []).append(index)
        results: list[outcome.Outcome[Any] | None] = [None] * len(batch)
        one_statement = len(by_class) == 1 and next(iter(by_class)).single_statement
        async with self._transaction(one_statement=one_statement) as conn:
            for cls in sorted(by_class, key=lambda c: c.batch_order):
                indexes = by_class[cls]
                group_results = await cls.run_batch(conn, [batch[i] for i in indexes])
                for index, result in zip(indexes, group_results, strict=True):
                    results[index] = result
        return [r for r in results if r is not None]

    async def _run_alone(self, command: WriteCommand[Any]) -> outcome.Outcome[Any]:
        """Run one command in its own transaction, retrying lock conflicts.

        Whatever fails is answered as an :class:`EventdError`, so the actor
        waiting for it answers its client instead of crashing.
        """
        for attempt, backoff in enumerate(CONFLICT_RETRY_BACKOFF_SECONDS):
            try:
                async with self._transaction() as conn:
                    [result] = await type(command).run_batch(conn, [command])
                return result
            except Unavailable as exc:
                return outcome.Error(exc)
            except QueryFailed as exc:
                if exc.sqlstate in RETRYABLE_SQLSTATES and attempt + 1 < len(
                    CONFLICT_RETRY_BACKOFF_SECONDS
                ):
                    await trio.sleep(backoff * (1 + random.random()))
                    continue
                if exc.sqlstate in RETRYABLE_SQLSTATES:
                    return outcome.Error(Unavailable("The database is busy; please retry."))
                log.warning("%s failed: %s", type(command).__name__, exc)
                return outcome.Error(WriteFailed("The change could not be saved."))
            except Exception:
                log.exception("write command %s failed", type(command).__name__)
                return outcome.Error(WriteFailed("The change could not be saved."))
        raise AssertionError("unreachable")

    def _record(self, size: int, seconds: float) -> None:
        self._transactions += 1
        self._commands += size
        self._largest_batch = max(self._largest_batch, size)
        bucket = 2 ** math.ceil(math.log2(size))
        self._batch_size_counts[bucket] = self._batch_size_counts.get(bucket, 0) + 1
        self._commit_seconds_total += seconds
        self._commit_seconds_counts[COMMIT_SECONDS_BOUNDS[
            bisect.bisect_left(COMMIT_SECONDS_BOUNDS, seconds)]] += 1

    def statistics(self) -> WriterStatistics:
        return WriterStatistics(
            transactions=self._transactions,
            commands=self._commands,
            largest_batch=self._largest_batch,
            batch_size_counts=dict(self._batch_size_counts),
            commit_seconds_total=self._commit_seconds_total,
            commit_seconds_counts=dict(self._commit_seconds_counts),
            queued=self._receive.statistics().current_buffer_used,
        )
