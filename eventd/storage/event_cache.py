"""The shared cache of event JSON in Redis, for reads on any daemon.

Each event is one hash ``eventd:event:{id}`` with its ``version`` and its
JSON. The actor that changes an event writes the new JSON through before it
answers, so a read on any daemon after an acknowledged change finds that
change (or newer). Writes are guarded by version in one Lua step: an older
version never replaces a newer one, whichever daemon is slower. A deleted
event leaves a tombstone (empty JSON at the highest version) so that no late
write brings it back; both expire after ``redis.cache_ttl_seconds``.

Without Redis, or while it is down, every method does nothing and every
lookup misses: the actors and PostgreSQL answer instead. When Redis comes
back, every entry is dropped first, since writes made meanwhile were lost.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from eventd.model import Event
from eventd.storage.redis import Redis

KEY_PREFIX = "eventd:event:"
GONE: Final = b""  # the tombstone's JSON
_TOMBSTONE_VERSION = 2**53  # above any version an event reaches

_STORE_IF_NEWER = """
local held = redis.call('HGET', KEYS[1], 'version')
if held and tonumber(held) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'json', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class EventCache:
    def __init__(self, redis: Redis | None, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._store: Any = redis.register_script(_STORE_IF_NEWER) if redis else None
        if redis is not None:
            redis.on_recovered(self.purge)

    @property
    def enabled(self) -> bool:
        return self._redis is not None and self._redis.up

    async def lookup(self, event_id: uuid.UUID) -> bytes | None:
        """The event's JSON; :data:`GONE` for a deleted event; None when not cached."""
        if self._redis is None:
            return None
        found = await self._redis.hmget(KEY_PREFIX + str(event_id), "json")
        return found[0] if found else None

    async def store(self, event: Event) -> None:
        await self._write(event.id, event.version, event.json_bytes)

    async def store_gone(self, event_id: uuid.UUID) -> None:
        await self._write(event_id, _TOMBSTONE_VERSION, GONE)

    async def _write(self, event_id: uuid.UUID, version: int, data: bytes) -> None:
        if self._redis is not None:
            await self._redis.run_script(
                self._store, [KEY_PREFIX + str(event_id)], [version, data, self._ttl]
            )

    async def purge(self) -> None:
        if self._redis is not None:
            await self._redis.delete_matching(KEY_PREFIX + "*")
