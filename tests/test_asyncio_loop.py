"""eventd.asyncio_loop: asyncio's callbacks run a queue-full per step of the loop's task."""

from __future__ import annotations

import asyncio

import trio
import trio.testing
import trio_asyncio

from eventd.asyncio_loop import MAX_CALLBACKS_PER_STEP, open_loop
from tests.support import counting_tasks


async def queue_and_count_steps(
    loop: asyncio.AbstractEventLoop, callbacks: int
) -> tuple[list[int], int]:
    """Queue ``callbacks`` callbacks at once; what ran, and in how many steps of the loop."""
    await trio.testing.wait_all_tasks_blocked()
    ran: list[int] = []
    with counting_tasks(lambda name: name.endswith("._main_loop")) as loop_task:
        for n in range(callbacks):
            loop.call_soon(ran.append, n)
        await trio.testing.wait_all_tasks_blocked()
    return ran, loop_task.steps


async def test_queued_callbacks_run_in_order_in_one_step_of_the_loop():
    async with open_loop() as loop:
        ran, steps = await queue_and_count_steps(loop, 10)
    assert ran == list(range(10))
    assert steps == 1  # trio-asyncio alone takes a step (a pass of the scheduler) per callback


async def test_a_long_queue_lets_other_tasks_in_between():
    async with open_loop() as loop:
        ran, steps = await queue_and_count_steps(loop, 3 * MAX_CALLBACKS_PER_STEP)
    assert ran == list(range(3 * MAX_CALLBACKS_PER_STEP))
    assert steps >= 3


async def test_timers_and_asyncio_tasks_still_run_and_the_loop_still_stops():
    async with open_loop() as loop:
        fired = trio.Event()
        loop.call_later(0.01, fired.set)

        async def answer() -> int:
            await asyncio.sleep(0)
            return 42

        assert await trio_asyncio.aio_as_trio(answer, loop=loop)() == 42
        with trio.fail_after(5):
            await fired.wait()
