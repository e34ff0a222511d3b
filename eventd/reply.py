"""Reply: a one-shot answer, set once by the task that has it, awaited by the one that asked.

One per request on the registration path (and one per writer command), so it
is built on trio's low-level parking instead of a ``trio.Event``: three slots,
no parking lot. Instead of a waiting task, a reply can have a callback
(:meth:`then`), called with the answer by whoever sets it: a turn of an event
actor's registrations waits for the writer that way, without a task of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import outcome
import trio

T = TypeVar("T")


class Reply(Generic[T]):
    __slots__ = ("_result", "_waiter", "_callback")

    def __init__(self) -> None:
        self._result: outcome.Outcome[T] | None = None
        self._waiter: trio.lowlevel.Task | None = None  # the one task in wait(), if any
        self._callback: Callable[[outcome.Outcome[T]], None] | None = None

    def set(self, value: T) -> None:
        self.settle(outcome.Value(value))

    def fail(self, error: BaseException) -> None:
        self.settle(outcome.Error(error))

    def settle(self, result: outcome.Outcome[T]) -> None:
        """The first answer counts; later ones are ignored."""
        if self._result is not None:
            return
        self._result = result
        waiter, self._waiter = self._waiter, None
        # Let go of the callback: it usually holds what holds this reply (a
        # turn holds its command, whose reply this is), and the cycle would
        # leave a whole turn for the cycle collector instead of reference counting.
        callback, self._callback = self._callback, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter, result)  # wait() returns (or raises) it as it wakes
        elif callback is not None:
            callback(result)

    def then(self, callback: Callable[[outcome.Outcome[T]], None]) -> None:
        """Call ``callback`` with the answer, in the setter's task, instead of waiting for it."""
        assert self._result is None, "a reply is answered once"
        assert self._waiter is None, "a reply is waited for or handed to a callback, not both"
        assert self._callback is None, "one callback"
        self._callback = callback

    async def wait(self) -> T:
        """The answer, once there is one (one waiter only; cancellable while waiting)."""
        assert self._callback is None, "a reply is waited for or handed to a callback, not both"
        if self._result is None:
            self._waiter = trio.lowlevel.current_task()

            def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
                self._waiter = None
                return trio.lowlevel.Abort.SUCCEEDED

            answer: T = await trio.lowlevel.wait_task_rescheduled(abort)
            return answer
        await trio.lowlevel.checkpoint()
        return self._result.unwrap()
