"""The PostgreSQL adapter: asyncpg, bridged into trio.

asyncpg is an asyncio library. This module is the only one that touches it or
``trio_asyncio``: everything above sees trio-native :class:`Database` and
:class:`Connection` objects and these failures:

- :class:`eventd.errors.Unavailable` — the database cannot be reached (refused,
  dropped, shutting down, timed out). Callers answer 503 and retry later.

  - :class:`CannotConnect` — :func:`open_database` could not make its first
    connection. Its message is for the operator starting the daemon: it names
    the host, the port, the database and the user, and says why (no such
    database, a role refused, the port closed, no answer in time) — never
    the password.

- :class:`QueryFailed` — the database answered and refused the statement
  (a constraint, a deadlock, a serialization failure); ``sqlstate`` says which.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import asyncpg
import trio
import trio_asyncio
from trio_asyncio import open_loop

from eventd.errors import Unavailable

Row = Mapping[str, Any]

# A session idle in a transaction this long (or two statement timeouts, if
# longer) has lost its daemon: the server ends it (see _session_settings).
IDLE_IN_TRANSACTION_MIN_SECONDS = 5.0
# A cursor's transaction may wait this long between pages for its reader.
CURSOR_IDLE_SECONDS = 120.0

# sqlstate classes that mean "the server is going away or cannot serve".
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
# sqlstates met while connecting: no such database; the role or its password refused.
_NO_SUCH_DATABASE_SQLSTATE = "3D000"
_AUTHORIZATION_SQLSTATE_CLASS = "28"


class QueryFailed(Exception):
    """The database refused a statement."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class CannotConnect(Unavailable):
    """The daemon's first connection to its database failed; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class _Target:
    """Where a database URL points, in words fit for an error message: no password."""

    address: str  # host:port, as asyncpg will try it
    database: str
    user: str

    @classmethod
    def of(cls, url: str) -> _Target:
        parts = urllib.parse.urlsplit(url)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        userinfo, _, hosts = parts.netloc.rpartition("@")
        # asyncpg's defaults where the URL is silent: the PG* variables, then its own.
        user = (urllib.parse.unquote(userinfo.partition(":")[0]) or query.get("user")
                or os.environ.get("PGUSER") or _os_user())
        database = (urllib.parse.unquote(parts.path.lstrip("/")) or query.get("dbname")
                    or os.environ.get("PGDATABASE") or user)
        port = query.get("port") or os.environ.get("PGPORT") or "5432"
        if not hosts:
            hosts = f"{query.get('host') or os.environ.get('PGHOST') or 'localhost'}:{port}"
        elif "," not in hosts and (":" not in hosts or hosts.endswith("]")):
            hosts = f"{hosts}:{port}"
        return cls(urllib.parse.unquote(hosts), database, user)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry
        return "?"


@contextlib.contextmanager
def _connect_errors(url: str, timeout_seconds: float) -> Iterator[None]:
    """A failed first connection as :class:`CannotConnect`, saying where and why."""
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise CannotConnect(_connect_failure(_Target.of(url), exc, timeout_seconds)) from exc


def _connect_failure(target: _Target, exc: Exception, timeout_seconds: float) -> str:
    database = f'database "{target.database}" at {target.address}'
    user = f'user "{target.user}"'
    if isinstance(exc, TimeoutError):  # asyncpg's connect timeout, asyncio's TimeoutError
        return f"{database} ({user}) did not answer within {timeout_seconds:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"cannot connect to {database} ({user}): connection refused;"
            " is PostgreSQL running and listening on that port?"
        )
    if isinstance(exc, OSError):
        return f"cannot connect to {database} ({user}): {exc.strerror or exc}"
    sqlstate = getattr(exc, "sqlstate", None) or ""
    said = getattr(exc, "message", None) or str(exc)
    if sqlstate == _NO_SUCH_DATABASE_SQLSTATE:
        return (
            f"{database} does not exist ({user}); create it,"
            " or point database.url at one that does"
        )
    if sqlstate.startswith(_AUTHORIZATION_SQLSTATE_CLASS):
        return f"{database} refused {user}: {said}"
    return f"{database} ({user}) refused the connection: {said}"


@contextlib.contextmanager
def _translate_errors(*, connecting: bool = False) -> Iterator[None]:
    """asyncpg's errors as ours; any refusal while connecting means unavailable."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if (
            connecting
            or isinstance(exc, asyncpg.PostgresConnectionError)
            or sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES)
        ):
            raise Unavailable("The database cannot be reached right now.") from exc
        raise QueryFailed(str(exc), sqlstate) from exc
    except (
        OSError,
        TimeoutError,
        trio.TooSlowError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
    ) as exc:
        # InternalClientError: a connection left mid-operation by an outage
        # ("another operation is in progress"); the pool drops it on release.
        raise Unavailable("The database cannot be reached right now.") from exc


class Connection:
    """One connection, used by one task at a time; statements are cached prepared.

    Each statement has ``timeout_seconds``, kept by trio: past it the
    statement is cancelled (asyncpg asks the server to cancel it too) and
    the caller gets :class:`~eventd.errors.Unavailable`. asyncpg's own
    ``command_timeout`` would put an asyncio timer on the loop per statement,
    and a cancelled asyncio timer stays queued until it would have fired.
    """

    def __init__(self, raw: Any, loop: Any, timeout_seconds: float) -> None:
        self._raw = raw
        self._loop = loop
        self._timeout_seconds = timeout_seconds
        #: A statement was cut off (cancelled, timed out, the server gone): the
        #: session's state is unknown, so it is closed, never reset or reused.
        self.broken = False

    async def _call(self, method: Any, *args: Any) -> Any:
        try:
            with _translate_errors(), trio.fail_after(self._timeout_seconds):
                return await trio_asyncio.aio_as_trio(method, loop=self._loop)(*args)
        except QueryFailed:
            raise  # the server answered: the session is fine
        except BaseException:
            self.broken = True
            raise

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        rows: list[Row] = await self._call(self._raw.fetch, sql, *args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._call(self._raw.fetchrow, sql, *args)
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._call(self._raw.fetchval, sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        status: str = await self._call(self._raw.execute, sql, *args)
        return status

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        await self.execute("BEGIN")
        try:
            yield self
        except BaseException:
            if not self.broken:
                with trio.CancelScope(shield=True), contextlib.suppress(Exception):
                    with trio.move_on_after(5):
                        await self.execute("ROLLBACK")
            raise
        # A transaction aborted by a failed statement answers COMMIT with a
        # ROLLBACK tag and no error: that is a failure, not a success.
        status = await self.execute("COMMIT")
        if status != "COMMIT":
            raise QueryFailed(f"the transaction was rolled back ({status})", "25P02")


class Cursor:
    """A server-side cursor: a query's rows, a page at a time (see :meth:`Database.cursor`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._fetches: dict[int, Any] = {}  # page size -> its prepared FETCH

    async def fetch(self, rows: int) -> list[Row]:
        """The next ``rows`` rows at most; an empty list once all were read."""
        statement = self._fetches.get(rows)
        if statement is None:
            # Prepared for this cursor only, outside asyncpg's statement cache:
            # a FETCH's columns are its cursor's, and the next cursor's differ.
            statement = await self._conn._call(
                self._conn._raw.prepare, f"FETCH FORWARD {int(rows)} FROM {_CURSOR_NAME}"
            )
            self._fetches[rows] = statement
        page: list[Row] = await self._conn._call(statement.fetch)
        return page


_CURSOR_NAME = "eventd_cursor"


@dataclasses.dataclass(frozen=True)
class DatabaseStatistics:
    pool_size: int
    idle_connections: int


class Database:
    """A pool of connections to one PostgreSQL database."""

    def __init__(self, pool: Any, loop: Any, timeout_seconds: float) -> None:
        self._pool = pool
        self._loop = loop
        self._timeout_seconds = timeout_seconds  # to take a connection; for each statement

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        with _translate_errors(connecting=True):
            raw = await trio_asyncio.aio_as_trio(self._pool.acquire, loop=self._loop)(
                timeout=self._timeout_seconds
            )
        conn = Connection(raw, self._loop, self._timeout_seconds)
        try:
            yield conn
        finally:
            # A cut-off session is closed at once: resetting it would wait on a
            # server that may never answer (a partition), past any deadline.
            if conn.broken:
                # A session the server closed may be back in the pool already: that raises.
                with contextlib.suppress(asyncpg.InterfaceError):
                    raw.terminate()
            with trio.CancelScope(shield=True), contextlib.suppress(Exception):
                await trio_asyncio.aio_as_trio(self._pool.release, loop=self._loop)(raw)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self.connection() as conn:
            return await conn.fetch(sql, *args)

    @contextlib.asynccontextmanager
    async def cursor(
        self, sql: str, *args: Any, idle_seconds: float = CURSOR_IDLE_SECONDS
    ) -> AsyncIterator[Cursor]:
        """A server-side cursor over ``sql``'s rows, for reading more rows than fit in memory.

        It holds a connection and a read-only transaction (one snapshot of
        the rows) for the whole block. It is an SQL cursor (``DECLARE``), not
        a protocol portal such as asyncpg's own cursors: PostgreSQL plans a
        cursor for its first rows (``cursor_tuple_fraction``), so the first
        page comes from an index at once, where a portal is planned for all
        its rows and may sort every one of them before the first is sent.
        Compiling the query (JIT) is off for the same reason. Between pages the caller may wait (a
        client reading slowly): the transaction may stay idle up to
        ``idle_seconds`` at a time, past the sessions' usual limit (see
        :func:`_session_settings`); longer, and the server ends the session
        and the next page is :class:`~eventd.errors.Unavailable`.
        """
        async with self.connection() as conn, conn.transaction():
            await conn.execute(
                "SET TRANSACTION READ ONLY;"
                f" SET LOCAL idle_in_transaction_session_timeout = {int(idle_seconds * 1000)};"
                " SET LOCAL jit = off"
            )
            await conn.execute(f"DECLARE {_CURSOR_NAME} NO SCROLL CURSOR FOR {sql}", *args)
            yield Cursor(conn)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self.connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(sql, *args)

    async def ping(self) -> float:
        """Round-trip a trivial query; returns its latency in seconds."""
        started = time.perf_counter()
        await self.fetchval("SELECT 1")
        return time.perf_counter() - started

    def statistics(self) -> DatabaseStatistics:
        return DatabaseStatistics(
            pool_size=self._pool.get_size(), idle_connections=self._pool.get_idle_size()
        )


@contextlib.asynccontextmanager
async def open_database(
    url: str, *, pool_size: int, timeout_seconds: float
) -> AsyncIterator[Database]:
    """Open a pool to ``url`` for the duration of the block.

    Raises :class:`CannotConnect` when the first connection fails, saying why.
    """
    try:
        async with open_loop() as loop:
            with _connect_errors(url, timeout_seconds):
                pool = await trio_asyncio.aio_as_trio(asyncpg.create_pool, loop=loop)(
                    url,
                    min_size=1,
                    max_size=pool_size,
                    timeout=timeout_seconds,
                    max_inactive_connection_lifetime=300,
                    reset=_reset,
                    server_settings=_session_settings(timeout_seconds),
                )
            try:
                yield Database(pool, loop, timeout_seconds)
            finally:
                with trio.CancelScope(shield=True), contextlib.suppress(Exception):
                    with trio.move_on_after(5):
                        await trio_asyncio.aio_as_trio(pool.close, loop=loop)()
    except BaseExceptionGroup as group:
        # The loop's nursery wraps whatever the block raised; hand back the
        # error itself when there is just one, so callers see what happened.
        # Its own cause goes with it: what asyncpg said is what an operator needs.
        leaves = list(_leaves(group))
        if len(leaves) == 1:
            raise leaves[0] from leaves[0].__cause__
        raise


def _session_settings(timeout_seconds: float) -> dict[str, str]:
    """Settings for every session eventd opens.

    eventd never leaves a transaction idle: its statements follow each other
    at once. A session idle inside a transaction for longer than a few
    statement timeouts is one whose daemon was cut off (a network partition,
    a frozen or killed process) — and it may hold an event's row lock. Without
    this the server keeps it, lock and all, until TCP keepalive notices the
    peer is gone (hours by default), and every write to that event waits.

    Every statement is planned when it runs, for the tables as they are then
    (``plan_cache_mode``). asyncpg prepares each statement once per
    connection, and PostgreSQL would soon settle on one plan for it: made
    while a new deployment's tables were small, a lookup by key reads the
    whole table for as long as the connection lives. In a rush with
    ``Idempotency-Key``, storing each request's answer did: a keyed request's
    two statements took 2.4 ms after 30,000 keys against 0.9 ms planned as
    they run (``python -m bench.stale_statistics [--before]``). Planning costs
    the server about 10 µs a statement. The writer's SQL functions keep their
    plans, on the indexes (``sql/007_index_plans.sql``).
    """
    idle_ms = int(max(IDLE_IN_TRANSACTION_MIN_SECONDS, 2 * timeout_seconds) * 1000)
    return {
        "idle_in_transaction_session_timeout": str(idle_ms),
        "plan_cache_mode": "force_custom_plan",
    }


async def _reset(raw: Any) -> None:
    """Make a connection fit to go back to the pool: end what a cancelled caller left open.

    asyncpg's default also runs RESET ALL, UNLISTEN * and
    pg_advisory_unlock_all() — one more round trip after every query, for
    state eventd never leaves on a connection (the migration lock is
    released explicitly).
    """
    if raw.is_in_transaction():
        await raw.execute("ROLLBACK")


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc
