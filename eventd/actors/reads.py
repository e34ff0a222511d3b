"""An event's JSON for a read: from the shared cache, its actor, or its row.

One daemon (no Redis): every change goes through this daemon's actors, so an
actor's state is the truth and a read costs no query.

Several daemons (Redis configured): every change is written through the
shared cache before it is acknowledged, so the cache is the freshest copy; a
miss is filled from the actor, which the relay keeps up with the other
daemons' changes. While the relay is out of touch — Redis down, the
subscription broken, or the reload after either not done yet — an actor may
be behind the other daemons, and the cache may be too (a daemon that cannot
reach Redis writes nothing through it). Then a read is the event's row, and
so is a stream's snapshot (:meth:`EventReads.row_if_out_of_touch`): a
primary-key lookup per read, only for as long as Redis is away.
"""

from __future__ import annotations

import uuid

from eventd.actors.supervisor import LoadEvent, Supervisor
from eventd.errors import NotFound
from eventd.model import Event
from eventd.realtime.relay import Relay
from eventd.storage.event_cache import GONE, EventCache


class EventReads:
    """See the module docstring. ``cache`` and ``relay`` come together, or not at all."""

    def __init__(
        self,
        supervisor: Supervisor,
        load_event: LoadEvent,
        cache: EventCache | None = None,
        relay: Relay | None = None,
    ) -> None:
        self._supervisor = supervisor
        self._load_event = load_event
        self._cache = cache
        self._relay = relay

    async def event_json(self, event_id: uuid.UUID) -> bytes:
        if self._cache is None:  # one daemon
            return (await self._supervisor.get_event(event_id)).json_bytes
        if self._in_touch():
            cached = await self._cache.lookup(event_id)
            if cached == GONE:
                raise NotFound(f"Event {event_id} does not exist.")
            if cached is not None:
                return cached
        if not self._in_touch():  # perhaps only now: the lookup found Redis gone
            return (await self._row(event_id)).json_bytes
        event = await self._supervisor.get_event(event_id)
        await self._cache.store(event)
        return event.json_bytes

    async def row_if_out_of_touch(self, event_id: uuid.UUID) -> Event | None:
        """The event's row while the relay is out of touch; None while the actor can be trusted.

        Raises :class:`NotFound` when the row is gone.
        """
        if self._cache is None or self._in_touch():
            return None
        return await self._row(event_id)

    def _in_touch(self) -> bool:
        return self._relay is not None and self._relay.in_touch

    async def _row(self, event_id: uuid.UUID) -> Event:
        event = await self._load_event(event_id)
        if event is None:
            raise NotFound(f"Event {event_id} does not exist.")
        return event
