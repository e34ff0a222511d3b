"""Reply: a one-shot answer, set once by the task that has it, awaited by the one that asked."""

from __future__ import annotations

from typing import Generic, TypeVar

import outcome
import trio

T = TypeVar("T")


class Reply(Generic[T]):
    def __init__(self) -> None:
        self._done = trio.Event()
        self._result: outcome.Outcome[T] | None = None

    def set(self, value: T) -> None:
        self.settle(outcome.Value(value))

    def fail(self, error: BaseException) -> None:
        self.settle(outcome.Error(error))

    def settle(self, result: outcome.Outcome[T]) -> None:
        """The first answer counts; later ones are ignored."""
        if not self._done.is_set():
            self._result = result
            self._done.set()

    async def wait(self) -> T:
        await self._done.wait()
        assert self._result is not None
        return self._result.unwrap()
