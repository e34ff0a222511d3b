"""Fan-out: one task writes every stream's queued messages to its socket.

A change that a thousand clients follow must not cost a thousand task
switches, ASGI messages and framings. Each change is framed once
(:meth:`~eventd.realtime.hub.Change.frame`); when a stream's outbox gets
something, the stream is put on the fan-out's ready list, and the fan-out
task takes each ready outbox whole and writes its frames with one
non-blocking write (:class:`~eventd.http.raw_websocket.RawWebsocket`). Under load,
more messages wait per round, so a round costs about the same and carries
more: the rate adapts to the CPU without a timer.

Only a stream whose socket is full (a slow client) involves its own task: it
waits for the socket, writes the rest, then takes what queued meanwhile,
until it is caught up. The same fan-out task pings every stream each ping
interval; hypercorn's read timeout drops a peer that stays silent.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from eventd.realtime.outbox import Closing, Outbox

from .raw_websocket import RawWebsocket

log = logging.getLogger(__name__)

NORMAL_CLOSURE = 1000
INTERNAL_ERROR = 1011
PING_FRAME = b"\x89\x00"  # final, unmasked ping with no payload
# A round over a thousand streams takes milliseconds; let others run between parts.
STREAMS_PER_CHECKPOINT = 256


class Fanout:
    """The task that writes every ready stream, and pings them all each interval."""

    def __init__(self, ping_interval_seconds: float) -> None:
        self._ping_interval_seconds = ping_interval_seconds
        self._streams: set[Stream] = set()
        self._ready: dict[Stream, None] = {}  # insertion-ordered, each once
        self._wake = trio.Event()

    def add(self, stream: Stream) -> None:
        self._streams.add(stream)

    def discard(self, stream: Stream) -> None:
        self._streams.discard(stream)
        self._ready.pop(stream, None)

    def mark_ready(self, stream: Stream) -> None:
        self._ready[stream] = None
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        next_ping = trio.current_time() + self._ping_interval_seconds
        task_status.started()
        while True:
            with trio.move_on_at(next_ping):
                await self._wake.wait()
            self._wake = trio.Event()
            ready, self._ready = self._ready, {}
            for n, stream in enumerate(ready, 1):
                try:
                    stream.flush_nowait()
                except Exception:  # one stream's failure is not every stream's
                    log.exception("a websocket stream failed; closing it")
                    stream.outbox.close_nowait(INTERNAL_ERROR)
                if n % STREAMS_PER_CHECKPOINT == 0:
                    await trio.lowlevel.checkpoint()  # requests and actors run in a long round
            if trio.current_time() >= next_ping:
                for stream in self._streams:
                    stream.ping_nowait()
                next_ping = trio.current_time() + self._ping_interval_seconds


class Stream:
    """One websocket client's stream: its outbox, its socket, and the task that serves it."""

    __slots__ = (
        "_fanout",
        "_raw",
        "_ratio",
        "_close_after_delete",
        "outbox",
        "_started",
        "_parked",
        "_draining",
    )

    def __init__(
        self,
        fanout: Fanout,
        raw: RawWebsocket,
        size: int,
        almost_full_ratio: float,
        *,
        close_after_delete: bool,
    ) -> None:
        self._fanout = fanout
        self._raw = raw
        self._ratio = almost_full_ratio
        self._close_after_delete = close_after_delete
        self.outbox = Outbox(size, on_ready=self._outbox_ready)
        self._started = False
        self._parked: trio.lowlevel.Task | None = None  # serve(), waiting for _wake()
        self._draining: trio.CancelScope | None = None
        raw.on_gone = self._gone

    async def serve(self) -> int | None:
        """Keep the client fed until the outbox asks for a close; call it once accepted.

        Returns the close code to send, or None when the client has gone.
        """
        self._started = True
        self._fanout.add(self)
        try:
            self.flush_nowait()  # what was queued before the accept: the snapshot or replay
            while self._raw.open:
                if self._raw.backlogged:
                    with trio.CancelScope() as self._draining:
                        await self._raw.drain()
                    self._draining = None
                    self.flush_nowait()
                elif self.outbox.closed:
                    return self.outbox.close_code
                else:
                    await self._wait()
            return None
        finally:
            self._fanout.discard(self)

    def flush_nowait(self) -> None:
        """Write everything queued in one write; a full socket hands over to :meth:`serve`."""
        if not self._started:
            return  # serve() flushes right after the accept
        if self._raw.backlogged:
            self._wake()  # serve() drains the socket, then flushes
            return
        try:
            changes = self.outbox.take_nowait()
        except Closing:
            self._wake()
            return
        if not changes:
            return
        if self._close_after_delete:
            for n, change in enumerate(changes):
                if change.type == "eventDeleted":  # the last message of this stream
                    del changes[n + 1 :]
                    self.outbox.close_nowait(NORMAL_CLOSURE)
                    break
        ratio = self._ratio
        if len(changes) == 1:
            frames = changes[0].frame(ratio)
        else:
            frames = b"".join([change.frame(ratio) for change in changes])
        if not self._raw.write_nowait(frames):
            self._wake()  # the socket is full: serve() waits for it

    def ping_nowait(self) -> None:
        if not self._raw.write_nowait(PING_FRAME):
            self._wake()

    async def _wait(self) -> None:
        # Parked by hand rather than on a trio.Event: every idle connection
        # waits here for as long as it is open, and an Event with its parking
        # lot costs some 300 bytes more each. The caller checks what changed
        # after every wake.
        self._parked = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._parked = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _wake(self) -> None:
        task, self._parked = self._parked, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    def _gone(self) -> None:
        self._wake()
        if self._draining is not None:
            self._draining.cancel()  # the socket will take nothing more

    def _outbox_ready(self) -> None:
        if self.outbox.closed:
            self._wake()
        else:
            self._fanout.mark_ready(self)
