"""Reply: one answer, set once, awaited once."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from eventd.errors import NotFound
from eventd.reply import Reply


async def test_the_waiter_gets_the_answer_set_after_it_began_waiting() -> None:
    reply: Reply[int] = Reply()
    got: list[int] = []

    async def wait() -> None:
        got.append(await reply.wait())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        assert not reply.settled
        reply.set(7)
    assert got == [7]


async def test_the_first_answer_counts() -> None:
    reply: Reply[int] = Reply()
    reply.fail(NotFound("gone"))
    reply.set(1)
    assert reply.settled
    with pytest.raises(NotFound):
        await reply.wait()


async def test_a_cancelled_waiter_leaves_the_reply_to_be_answered() -> None:
    reply: Reply[int] = Reply()
    with trio.move_on_after(0.01):
        await reply.wait()
    reply.set(3)
    assert await reply.wait() == 3
