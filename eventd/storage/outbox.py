"""Draining a durable outbox: what the mailer and the webhook deliverer share.

The rows of an outbox are written in the transaction of the change that
causes them; a drain sends them after COMMIT. It is woken by the writer after
each commit (:meth:`OutboxDrain.wake`) and polls every :data:`POLL_SECONDS`
besides, for retries that came due and rows other daemons wrote. Rows are
claimed with a lease under ``FOR UPDATE SKIP LOCKED``, so daemons sharing a
database never take the same one, and a daemon that dies mid-send leaves the
lease to expire: the row goes once more. A failed row waits with exponential
backoff and jitter (:func:`backoff_seconds`).

While commits keep coming the daemon is busy serving a rush: a drain then
pauses between the rows of a claim (:meth:`OutboxDrain.step_aside`) and
catches up after; its rows are safe in the outbox meanwhile. A rush's group
commits queue many rows at a time, so its claims are long and go at the
pause's pace; a trickle of single changes makes claims of one row, which go
at once.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import trio
import trio.lowlevel

from eventd.errors import Unavailable
from eventd.storage.database import Database

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# After a wake-up, let a burst of commits queue more before claiming: one
# claim and one "sent" update then serve many rows.
GATHER_SECONDS = 0.05
# While commits came this recently, the daemon is busy serving: a drain
# pauses this long between the rows of a claim (so a long claim goes at 20 a
# second, per endpoint for webhooks). Longer than
# the gap between group commits in a rush (a batch every ~0.1 s), or the
# drain would take those gaps for quiet and work flat out between them.
BUSY_WITHIN_SECONDS = 1.0
BUSY_PAUSE_SECONDS = 0.05


def backoff_seconds(attempts: int, base_seconds: float, max_seconds: float) -> float:
    """How long to wait after the ``attempts``-th failed attempt (1, 2, …).

    Doubling from ``base_seconds`` up to ``max_seconds``, then spread by a
    random factor in [0.5, 1.5) so that rows that failed together (a
    receiver down) do not all come back at the same moment.
    """
    delay: float = min(max_seconds, base_seconds * 2.0 ** min(attempts - 1, 62))
    return delay * (0.5 + random.random())


class OutboxDrain:
    """The loop of a drain; a subclass says what :meth:`send_due` sends."""

    #: What the rows are, for log lines.
    what = "message"

    def __init__(self, db: Database) -> None:
        self._db = db
        self._wakeup = trio.Event()
        self._woken_at = -math.inf

    def wake(self) -> None:
        """New rows may be waiting (called after a commit)."""
        self._woken_at = trio.current_time()
        self._wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if await self.send_due() == 0:
                with trio.move_on_after(POLL_SECONDS):
                    await self._wakeup.wait()
                    await trio.sleep(GATHER_SECONDS)
                self._wakeup = trio.Event()

    async def send_due(self) -> int:
        """Send what is due now; returns how many rows were attempted."""
        raise NotImplementedError

    async def step_aside(self) -> None:
        """Let requests go first: between rows, and at a trickle in a rush (see the module).

        Call it before each row but the first of a claim, not after the last: what
        was sent is then recorded, and its lease given back, without the pause.
        """
        if trio.current_time() - self._woken_at < BUSY_WITHIN_SECONDS:
            await trio.sleep(BUSY_PAUSE_SECONDS)
        else:
            await trio.lowlevel.checkpoint()

    async def record(self, sql: str, *args: Any) -> bool:
        """Write what became of rows; False if the database could not be reached.

        If this fails, the lease expires and the rows go again: at most once more.
        """
        try:
            async with self._db.connection() as conn:
                await conn.execute(sql, *args)
        except Unavailable:
            log.warning("could not record what became of a %s; it may be sent once more",
                        self.what)
            return False
        return True
