"""The asyncio loop that eventd's asyncio libraries run on, inside trio.

asyncpg (``eventd.storage.database``), redis (``eventd.storage.redis``) and
aiosmtplib (``eventd.email.smtp``) are asyncio libraries. Each adapter opens
its loop with :func:`open_loop`: trio-asyncio's loop, which runs asyncio's
callbacks in one trio task, changed in one way.

trio-asyncio's task takes one callback per trip through trio's scheduler: a
query's answer sets a future, whose callbacks wake asyncpg's task, which
finishes a future of trio-asyncio's, whose callback wakes the trio task that
asked — each a trip of its own, and each trip a pass of the scheduler over
every request waiting to run. Here the task runs every callback already
queued before it lets others go (up to :data:`MAX_CALLBACKS_PER_STEP`), as
asyncio's own loop runs every ready callback in one iteration. The order of
the callbacks is unchanged.

:func:`_check_trio_asyncio` refuses, at import, a trio-asyncio this was not
written against.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_asyncio
from trio_asyncio._base import BaseTrioEventLoop

# The trio-asyncio releases whose internals this module was written against.
TESTED_TRIO_ASYNCIO = ((0, 16),)
# Callbacks one step of the loop's task runs at most before it yields.
MAX_CALLBACKS_PER_STEP = 64


@asynccontextmanager
async def open_loop() -> AsyncIterator[Any]:
    """An asyncio loop for the block (trio-asyncio's, with the change above)."""
    async with trio_asyncio.open_loop() as loop:
        yield loop


def _check_trio_asyncio() -> None:
    version = importlib.metadata.version("trio-asyncio")
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    if major_minor not in TESTED_TRIO_ASYNCIO:
        tested = ", ".join(".".join(map(str, v)) for v in TESTED_TRIO_ASYNCIO)
        raise RuntimeError(
            f"trio-asyncio {version} is installed, but eventd/asyncio_loop.py changes the "
            f"internals of trio-asyncio {tested} only; check it against this release before"
            " allowing it"
        )
    if not callable(getattr(BaseTrioEventLoop, "_main_loop_one", None)):
        raise RuntimeError(f"trio-asyncio {version} has no BaseTrioEventLoop._main_loop_one")


_check_trio_asyncio()

_trio_asyncio_step = BaseTrioEventLoop._main_loop_one


async def _step(loop: BaseTrioEventLoop, no_wait: bool = False) -> None:
    """trio-asyncio's step (wait for a callback, run it), then every callback queued by then.

    ``no_wait``: trio-asyncio's own drain at shutdown, one callback a call,
    ``trio.WouldBlock`` when none is left; left as it is.
    """
    await _trio_asyncio_step(loop, no_wait)
    if no_wait:
        return
    for _ in range(MAX_CALLBACKS_PER_STEP):
        try:
            await _trio_asyncio_step(loop, True)  # a due timer, or a queued callback
        except trio.WouldBlock:
            return


BaseTrioEventLoop._main_loop_one = _step
