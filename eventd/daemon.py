"""The daemon: one nursery tree, started in order and stopped in reverse.

    serve()
    ├── database pool (embedded PostgreSQL first, if configured), migrations
    ├── Redis client    — if configured: the shared event cache and the relay
    ├── Writer          — group commit; started first, stopped last
    ├── Supervisor      — event actors; Relay — changes to and from other daemons
    ├── Mailer, Reminders
    └── hypercorn       — the HTTP/WebSocket port, opened only when all above are up

Stopping (SIGTERM, SIGINT, or the ``stop`` event): hypercorn stops accepting
and lets in-flight requests finish within the grace period; then the actors
are cancelled; then the writer commits whatever is still queued; then the pool
closes.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import signal
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import trio

from eventd import __version__
from eventd.actors.event_actor import Peers
from eventd.actors.reads import EventReads
from eventd.actors.supervisor import Supervisor
from eventd.config import Config
from eventd.email.mailer import Mailer
from eventd.email.reminders import Reminders
from eventd.email.smtp import open_smtp
from eventd.email.transports import FileTransport, NoTransport, Transport
from eventd.http.app import create_app
from eventd.http.context import Services
from eventd.http.server import serve_http
from eventd.realtime.hub import Hub
from eventd.realtime.relay import Relay
from eventd.storage import commands, queries
from eventd.storage.database import open_database
from eventd.storage.embedded import start_embedded
from eventd.storage.event_cache import EventCache
from eventd.storage.migrations import apply_migrations
from eventd.storage.redis import Redis, open_redis
from eventd.storage.writer import Writer

log = logging.getLogger("eventd")

GOING_AWAY = 1001  # WebSocket close code: the server is going down
# Allocations between two collections of the youngest generation (CPython's default: 700).
GC_YOUNG_THRESHOLD = 20_000


@dataclass(frozen=True)
class Running:
    """What a started daemon tells its starter."""

    urls: list[str]
    services: Services


def redact(url: str) -> str:
    """A database URL fit for a log line: no password."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


async def database_url(config: Config) -> str:
    if not config.database.embedded:
        return config.database.url
    _server, url = await start_embedded(config.database.data_dir)
    log.info("embedded PostgreSQL running under %s", config.database.data_dir)
    return url


async def migrate(config: Config) -> list[str]:
    return await migrate_url(await database_url(config))


async def migrate_url(url: str) -> list[str]:
    async with open_database(url, pool_size=2, timeout_seconds=30) as db:
        return await apply_migrations(db)


async def serve(
    config: Config,
    stop: trio.Event | None = None,
    *,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the daemon until ``stop`` is set (or forever)."""
    stop = stop if stop is not None else trio.Event()
    log.info("eventd %s starting; config: %s", __version__, config.describe_source())
    url = await database_url(config)
    log.info("database: %s", "embedded" if config.database.embedded else redact(url))
    async with contextlib.AsyncExitStack() as stack:
        db = await stack.enter_async_context(open_database(
            url,
            pool_size=config.database.pool_size,
            timeout_seconds=config.server.request_timeout_seconds,
        ))
        applied = await apply_migrations(db)
        log.info("migrations applied: %s", ", ".join(applied) if applied else "none needed")
        hub = Hub()
        redis = await stack.enter_async_context(_open_redis(config))
        cache = EventCache(redis, config.redis.cache_ttl_seconds)
        relay = (
            Relay(
                redis,
                deliver=lambda change: supervisor.deliver_remote(change),
                resync=lambda: supervisor.resync(),  # an awaitable, made when called
            )
            if redis is not None
            else None
        )
        transport = await stack.enter_async_context(_open_transport(config))
        log.info("email: %s transport", transport.name)
        mailer = Mailer(db, transport, config.email.sender,
                        public_url=config.server.public_url)
        writer = Writer(db, on_commit=mailer.wake)
        supervisor = Supervisor(
            functools.partial(queries.load_event, db),
            writer.offer,
            hub.publish,
            is_watched=hub.is_watched,
            is_followed=hub.is_followed,
            peers=Peers(relay.share, cache.store, cache.store_gone) if relay else None,
            pending_expiries=functools.partial(queries.pending_expiries, db),
        )
        reads = EventReads(supervisor, functools.partial(queries.load_event, db),
                           cache if relay else None, relay)
        before = timedelta(hours=config.reminders.before_hours)
        reminders = Reminders(
            lambda event_id: writer.submit(commands.SendReminders(event_id, before)), before
        )
        hub.add_listener(reminders.on_change)
        services = Services(config, db, writer, supervisor, reads, hub, mailer, redis, relay)
        async with trio.open_nursery() as writer_nursery:
            await writer_nursery.start(writer.run)
            async with trio.open_nursery() as actor_nursery:
                await actor_nursery.start(supervisor.run)
                if relay is not None:
                    await actor_nursery.start(relay.run)
                await actor_nursery.start(mailer.run)
                await actor_nursery.start(reminders.run)
                owed = await queries.events_owing_reminders(db)
                for event_id, starts_at in owed:  # a moment missed while down fires now
                    reminders.arm(event_id, starts_at, catch_up=True)
                log.info("reminders armed for %d event(s)", len(owed))
                async with trio.open_nursery() as front:
                    urls = await front.start(
                        serve_http,
                        create_app(services),
                        config,
                        functools.partial(_closing_streams, stop, hub),
                    )
                    log.info("listening on %s", ", ".join(urls))
                    _log_admin_routes(config)
                    log.info("dashboard: %s/ · API docs: %s/api", urls[0], urls[0])
                    task_status.started(Running(urls, services))
                log.info("stopping: requests drained")
                actor_nursery.cancel_scope.cancel()
            await writer.close()
        log.info("stopped: writer flushed")


def _log_admin_routes(config: Config) -> None:
    """Say who may create, edit and delete: the first thing to check before going public."""
    tokens = len(config.auth.admin_tokens)
    if tokens:
        log.info("admin routes: token-guarded (Authorization: Bearer; %d token(s) in"
                 " auth.admin_tokens)", tokens)
    elif config.server.loopback:
        log.info("admin routes: open, to this machine only (%s; set auth.admin_tokens to"
                 " guard them)", config.server.bind)
    else:
        log.warning("admin routes: open to anyone who reaches %s (auth.allow_open_admin,"
                    " no auth.admin_tokens)", config.server.bind)


@contextlib.asynccontextmanager
async def _open_redis(config: Config) -> AsyncIterator[Redis | None]:
    if not config.redis.url:
        log.info("redis: not configured (one daemon; no shared cache)")
        yield None
        return
    async with open_redis(config.redis.url) as redis:
        log.info("redis: %s (%s)", redact(config.redis.url), "up" if redis.up else "down for now")
        yield redis


@contextlib.asynccontextmanager
async def _open_transport(config: Config) -> AsyncIterator[Transport]:
    if config.email.transport == "smtp":
        async with open_smtp(config.email) as smtp:
            yield smtp
    elif config.email.transport == "file":
        yield FileTransport(config.email.dir)
    else:
        yield NoTransport()


async def _closing_streams(stop: trio.Event, hub: Hub) -> None:
    """hypercorn's shutdown trigger: on stop, ask every websocket to close with 1001."""
    await stop.wait()
    hub.close_all(GOING_AWAY)


def tune_garbage_collector() -> None:
    """Set CPython's cycle collector for a server that allocates per request.

    Everything made so far (the modules, the app) lives as long as the
    process: frozen, no collection looks at it again. A request's objects die
    young, by reference counting; collecting the young generation every 700
    allocations — the default, a few times per request — mostly walks objects
    about to die anyway, and promotes some of them to the older generations,
    whose collections walk everything. With two smaller changes of issue #7,
    a registration's CPU fell by about a tenth (bench/RESULTS.md).
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


async def run_until_signalled(config: Config) -> None:
    """The command-line daemon: serve until SIGTERM or SIGINT."""
    tune_garbage_collector()
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            async def watch_signals() -> None:
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if not stop.is_set():
                        log.info("received %s; shutting down (again to stop at once)", name)
                        stop.set()
                    else:
                        log.warning("received %s again; stopping now", name)
                        raise KeyboardInterrupt

            nursery.start_soon(watch_signals)
            await serve(config, stop)
            nursery.cancel_scope.cancel()
