"""``queueUpdate``: an event's admission queue as its stream carries it, once a second.

A state, not a change: it has no ``seq`` and moves no ``version``. One
message is made per event per tick and handed to every subscriber of the
event's stream; its JSON text and its WebSocket frame are built once however
many clients receive it. A subscriber's outbox holds at most one: a newer
replaces a queued older one (:meth:`~eventd.realtime.outbox.Outbox.put_state_nowait`).
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Literal

import orjson

from eventd.model import format_time
from eventd.realtime.frames import text_frame


class QueueUpdate:
    type: Literal["queueUpdate"] = "queueUpdate"

    def __init__(
        self, event_id: uuid.UUID, at: datetime, admitted_through: int, waiting: int, ranked: int
    ) -> None:
        self.event_id = event_id
        self.at = at
        self.admitted_through = admitted_through
        self.waiting = waiting
        self.ranked = ranked

    @property
    def counts(self) -> tuple[int, int, int]:
        return (self.admitted_through, self.waiting, self.ranked)

    def encode(self, almost_full_ratio: float = 0.0) -> str:
        return self.text

    def frame(self, almost_full_ratio: float = 0.0) -> bytes:
        """The whole WebSocket text frame, the same bytes for every client."""
        return self.frame_bytes

    @functools.cached_property
    def text(self) -> str:
        return orjson.dumps({
            "type": "queueUpdate",
            "eventId": str(self.event_id),
            "at": format_time(self.at),
            "data": {
                "admittedThrough": self.admitted_through,
                "waiting": self.waiting,
                "ranked": self.ranked,
            },
        }).decode()

    @functools.cached_property
    def frame_bytes(self) -> bytes:
        return text_frame(self.text)
