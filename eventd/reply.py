"""Reply: a one-shot answer, set once by the task that has it, awaited by the one that asked.

A request carries one down (HTTP → supervisor → actor), and so does every
writer command (actor → writer); the answer comes back up through it. It is a
``trio.Event`` and an outcome: nothing calls back into the asker's layer.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import outcome
import trio

T = TypeVar("T")


class Reply(Generic[T]):
    __slots__ = ("_result", "_done")

    def __init__(self) -> None:
        self._result: outcome.Outcome[T] | None = None
        self._done = trio.Event()

    @property
    def settled(self) -> bool:
        return self._result is not None

    def set(self, value: T) -> None:
        self.settle(outcome.Value(value))

    def fail(self, error: BaseException) -> None:
        self.settle(outcome.Error(error))

    def settle(self, result: outcome.Outcome[T]) -> None:
        """The first answer counts; later ones are ignored."""
        if self._result is None:
            self._result = result
            self._done.set()

    async def wait(self) -> T:
        """The answer, once there is one (cancellable while waiting)."""
        await self._done.wait()
        assert self._result is not None
        return self._result.unwrap()
