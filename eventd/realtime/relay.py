"""The relay: every change, shared with the other daemons on the same database, over Redis.

An actor hands each change it makes to :meth:`Relay.share` (never waiting);
the relay's task publishes what has gathered in one round trip on one Redis
channel. Every daemon subscribes to that channel and hands the changes made
elsewhere to its supervisor, which gives them to the event's actor here: the
actor adopts the newer state and publishes the change to its own streams in
``seq`` order (see ``EventActor`` on gaps).

Redis pub/sub keeps no history: a change published while a daemon was cut
off is lost to it. So when Redis answers again — before the daemon uses its
cache again and says "ok" — and again when the subscription is back, the
relay has the supervisor reload every live actor from the database. After
an outage the reload waits for the other daemons to notice Redis is back
too: until they do, they drop their changes instead of publishing them.

While the relay is out of touch (:attr:`Relay.in_touch` false: Redis down,
the subscription broken, or the reload after either not done yet) this
daemon's actors may be behind the other daemons' changes, so reads of an
event are served from its row instead (``eventd.actors.reads``).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable

import orjson
import trio

from eventd.model import Event, format_time, parse_time
from eventd.realtime.changes import Change
from eventd.storage.redis import COMMAND_TIMEOUT_SECONDS, MONITOR_INTERVAL_SECONDS, Redis

log = logging.getLogger(__name__)

CHANNEL = "eventd:changes"
QUEUE_SIZE = 65536  # changes waiting for Redis; past this they are dropped and counted
MAX_PER_PUBLISH = 512
RESUBSCRIBE_WAIT_SECONDS = 5.0
# How long the other daemons may take to notice that Redis is back (their
# monitor's interval, and a ping): the reload after an outage waits this long.
PEERS_NOTICE_SECONDS = MONITOR_INTERVAL_SECONDS + COMMAND_TIMEOUT_SECONDS


@dataclasses.dataclass(frozen=True)
class RelayStatistics:
    """Changes counted since start."""

    published: int  # this daemon's, handed to Redis
    received: int  # other daemons', handed to this daemon's actors
    dropped: int  # this daemon's that never reached Redis (down, or too many waiting)


class Relay:
    def __init__(
        self,
        redis: Redis,
        deliver: Callable[[Change], None],
        resync: Callable[[], Awaitable[None]],
    ) -> None:
        self._redis = redis
        self._deliver = deliver  # a change made elsewhere, for this daemon's actors
        self._resync = resync  # after a broken subscription: reload every live actor
        self._origin = uuid.uuid4().hex  # this daemon, so its own messages come back ignored
        self._send, self._receive = trio.open_memory_channel[bytes](QUEUE_SIZE)
        self._published = 0
        self._received = 0
        self._dropped = 0
        self._catching_up = False  # reloading after the subscription broke
        redis.on_recovered(self._recovered)

    def share(self, change: Change) -> None:
        """Queue one of this daemon's changes for the others; never waits."""
        try:
            self._send.send_nowait(self._encode(change))
        except trio.WouldBlock:
            self._dropped += 1

    @property
    def in_touch(self) -> bool:
        """Do the other daemons' changes reach this daemon's actors now?

        Not while Redis is down (or catching up after an outage), nor while
        the subscription is broken or the reload after it is under way.
        """
        return self._redis.up and self._redis.subscribed and not self._catching_up

    def statistics(self) -> RelayStatistics:
        return RelayStatistics(
            published=self._published, received=self._received, dropped=self._dropped
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._redis.subscribe, CHANNEL, self._incoming, self._resubscribed)
            nursery.start_soon(self._publish)
            task_status.started()

    async def _publish(self) -> None:
        async for first in self._receive:
            batch = [first]
            while len(batch) < MAX_PER_PUBLISH:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            if await self._redis.publish_many(CHANNEL, batch):
                self._published += len(batch)
            else:
                self._dropped += len(batch)

    async def _recovered(self) -> None:
        """Redis answers again: once the subscription is back and the other daemons
        publish again, catch up from the database.

        Runs before Redis counts as up, so reads go to the rows until it is done.
        """
        with trio.move_on_after(RESUBSCRIBE_WAIT_SECONDS):
            while not self._redis.subscribed:  # noqa: ASYNC110 - a brief poll of a flag
                await trio.sleep(0.05)
        # A daemon that has not noticed yet drops its changes and skips the
        # cache: the reload must come after the last of those.
        await trio.sleep(PEERS_NOTICE_SECONDS)
        log.info("redis is back; reloading live events from the database")
        await self._resync()

    async def _resubscribed(self) -> None:
        if self._redis.up:  # only the subscription broke; otherwise _recovered catches up
            log.info("relay subscription restored; reloading live events from the database")
            self._catching_up = True
            try:
                await self._resync()
            finally:
                self._catching_up = False

    def _incoming(self, data: bytes) -> None:
        try:
            message = orjson.loads(data)
            if message["origin"] == self._origin:
                return
            change = Change(
                message["type"],
                Event.from_json(message["event"]),
                message["seq"],
                parse_time(message["at"]),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed message on %s", CHANNEL)
            return
        self._received += 1
        self._deliver(change)

    def _encode(self, change: Change) -> bytes:
        return orjson.dumps(
            {
                "origin": self._origin,
                "type": change.type,
                "seq": change.seq,
                "at": format_time(change.at),
                "event": change.event.to_json(),
            }
        )
