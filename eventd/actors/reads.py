"""An event's JSON for a read: from the shared cache when there is one, else its actor."""

from __future__ import annotations

import uuid

from eventd.actors.supervisor import Supervisor
from eventd.errors import NotFound
from eventd.storage.event_cache import GONE, EventCache


class EventReads:
    """With several daemons the cache is the freshest copy: every change is
    written through it before it is acknowledged. A miss is filled from the
    actor. Without a cache (one daemon), the actor's state is the truth.
    """

    def __init__(self, supervisor: Supervisor, cache: EventCache | None = None) -> None:
        self._supervisor = supervisor
        self._cache = cache

    async def event_json(self, event_id: uuid.UUID) -> bytes:
        if self._cache is None or not self._cache.enabled:  # one daemon, or Redis away
            return (await self._supervisor.get_event(event_id)).json_bytes
        cached = await self._cache.lookup(event_id)
        if cached == GONE:
            raise NotFound(f"Event {event_id} does not exist.")
        if cached is not None:
            return cached
        event = await self._supervisor.get_event(event_id)
        await self._cache.store(event)
        return event.json_bytes
