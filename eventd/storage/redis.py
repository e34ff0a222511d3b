"""The Redis adapter: redis.asyncio, bridged into trio.

Like the database adapter, this is the only module that touches redis-py or
``trio_asyncio``. Redis is optional and never the truth, so every call here is
short and none raises: a command that fails or takes too long marks Redis
down and returns ``None`` (or nothing), and the caller carries on without it.
While Redis is down, commands are not even tried; a monitor task pings it
and, when it answers again, runs the ``on_recovered`` callbacks first (the
cache drops what it may have missed) and then lets commands through again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio
import trio_asyncio
from redis import asyncio as aioredis
from redis.exceptions import RedisError
from trio_asyncio import open_loop

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_SECONDS = 1.0
MONITOR_INTERVAL_SECONDS = 1.0
SUBSCRIBE_POLL_SECONDS = 1.0
RESUBSCRIBE_SECONDS = 0.2  # between attempts to subscribe again (a refused connect is cheap)


class Redis:
    """One Redis server, shared by the cache and the relay; see the module docstring."""

    def __init__(self, client: Any, loop: Any) -> None:
        self._client = client
        self._loop = loop
        self.up = False
        self._recovering = False  # the on_recovered callbacks may use Redis before it is up
        self.subscribed = False  # see subscribe()
        self._on_recovered: list[Callable[[], Awaitable[None]]] = []

    def on_recovered(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` each time Redis answers again after being down."""
        self._on_recovered.append(callback)

    async def _call(self, method: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
        if not (self.up or self._recovering):
            return None
        with trio.move_on_after(COMMAND_TIMEOUT_SECONDS) as deadline:
            try:
                return await trio_asyncio.aio_as_trio(method, loop=self._loop)(*args, **kw)
            except (RedisError, OSError) as exc:
                self._mark_down(exc)
                return None
        if deadline.cancelled_caught:
            self._mark_down(TimeoutError("no answer in time"))
        return None

    def _mark_down(self, cause: BaseException) -> None:
        if self.up:
            log.warning("redis is unreachable (%s); carrying on without it", cause)
        self.up = False

    # --- commands ---------------------------------------------------------------

    def register_script(self, source: str) -> Any:
        """A Lua script, run by :meth:`run_script` (EVALSHA, loading it when Redis lacks it)."""
        return self._client.register_script(source)

    async def run_script(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        return await self._call(script, keys=keys, args=args)

    async def hmget(self, key: str, *fields: str) -> list[bytes | None] | None:
        found: list[bytes | None] | None = await self._call(self._client.hmget, key, fields)
        return found

    async def publish_many(self, channel: str, messages: list[bytes]) -> bool:
        """PUBLISH each message, in order, in one round trip; False if Redis is down."""
        pipeline = self._client.pipeline(transaction=False)
        for message in messages:
            pipeline.publish(channel, message)
        return await self._call(pipeline.execute) is not None

    async def delete_matching(self, pattern: str) -> int:
        """Delete every key matching ``pattern`` (SCAN, so Redis is never blocked)."""
        deleted = 0
        cursor: int | None = 0
        while cursor is not None:
            page = await self._call(self._client.scan, cursor, match=pattern, count=1000)
            if page is None:
                return deleted
            cursor, keys = page
            if keys:
                deleted += await self._call(self._client.unlink, *keys) or 0
            cursor = cursor or None
        return deleted

    async def ping(self) -> bool:
        with trio.move_on_after(COMMAND_TIMEOUT_SECONDS):
            with contextlib.suppress(RedisError, OSError):
                return bool(await trio_asyncio.aio_as_trio(self._client.ping, loop=self._loop)())
        return False

    async def subscribe(
        self,
        channel: str,
        deliver: Callable[[bytes], None],
        resubscribed: Callable[[], Awaitable[None]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Call ``deliver`` with every message on ``channel``, resubscribing after outages.

        ``task_status.started()`` comes once the first subscription is in place
        (or at once, if Redis is down at start). Messages published while the
        subscription was broken are lost: ``resubscribed`` is called each time
        it is back after a break, so the caller can catch up another way.
        :attr:`subscribed` says whether it is in place now.
        """
        started = False
        broken = False
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            aio = trio_asyncio.aio_as_trio
            try:
                await aio(pubsub.subscribe, loop=self._loop)(channel)
                self.subscribed = True
                if not started:
                    task_status.started()
                    started = True
                if broken:
                    broken = False
                    await resubscribed()
                while True:
                    message = await aio(pubsub.get_message, loop=self._loop)(
                        timeout=SUBSCRIBE_POLL_SECONDS
                    )
                    if message is not None and message["type"] == "message":
                        deliver(message["data"])
            except (RedisError, OSError) as exc:
                self._mark_down(exc)
                broken = True
            finally:
                self.subscribed = False
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    with contextlib.suppress(Exception):
                        await trio_asyncio.aio_as_trio(pubsub.aclose, loop=self._loop)()
            if not started:
                task_status.started()
                started = True
            await trio.sleep(RESUBSCRIBE_SECONDS)

    # --- the monitor --------------------------------------------------------------

    async def monitor(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                      ) -> None:
        """Ping Redis while it is down; when it answers, recover and let commands through."""
        if await self.ping():
            self.up = True
        else:
            log.warning("redis is unreachable at start; carrying on without it")
        task_status.started()
        while True:
            await trio.sleep(MONITOR_INTERVAL_SECONDS)
            if self.up:
                continue
            if await self.ping():
                self._recovering = True
                try:
                    for callback in self._on_recovered:
                        await callback()
                finally:
                    self._recovering = False
                self.up = True
                log.info("redis is reachable again")


@contextlib.asynccontextmanager
async def open_redis(url: str) -> AsyncIterator[Redis]:
    """A Redis client for ``url`` with its monitor running, for the duration of the block."""
    async with open_loop() as loop:
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=COMMAND_TIMEOUT_SECONDS,
            socket_connect_timeout=COMMAND_TIMEOUT_SECONDS,
            health_check_interval=30,
        )
        redis = Redis(client, loop)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(redis.monitor)
                yield redis
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                with contextlib.suppress(Exception):
                    await trio_asyncio.aio_as_trio(client.aclose, loop=loop)()
