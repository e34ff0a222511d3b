"""The actor layer alone: CPU per registration from ``Supervisor.ask`` to its answer.

    python -m bench.actor_turns [--registrations 30000] [--baseline REV]

The end-to-end suite cannot see a few microseconds: on a shared two-core
machine one daemon's CPU per request moves by ±7 % from run to run. This
measures the part between the HTTP handler and the database — supervisor,
mailbox, actor, reply, the answer and the published change — in one process,
with a stand-in writer that batches like the real one and answers at once (no
database, no sockets), so its figure is steady to a few percent. Two shapes,
as in the suite: spread (100 events, 64 concurrent askers) and hot (one
event, 200). The stand-in answers every asker at once, so a hot actor here
goes dormant between turns, which under real load it hardly does. With
``--baseline REV``, the same figures for REV, checked out in
a git worktree and run in a process of its own, interleaved three times.
"""

from __future__ import annotations

import argparse
import functools
import gc
import inspect
import math
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import outcome
import trio

from eventd.actors import messages as m
from eventd.actors.supervisor import Supervisor
from eventd.model import Event, EventCounts, utc_now
from eventd.storage import commands as c
from eventd.storage.writer import WriteCommand

SHAPES = {"spread": (100, 64), "hot": (1, 200)}  # events, concurrent askers
CAPACITY = 10**9


class InstantWriter:
    """Takes what is queued as one batch, yields once, and answers every command."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[WriteCommand[Any]](math.inf)
        self._versions: dict[uuid.UUID, int] = {}

    def offer(self, command: WriteCommand[Any]) -> None:
        self._send.send_nowait(command)

    async def submit(self, command: WriteCommand[Any]) -> Any:  # for trees before Writer.offer
        self.offer(command)
        return await command.reply.wait()

    async def run(self) -> None:
        while True:
            batch = [await self._receive.receive()]
            while True:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            await trio.lowlevel.checkpoint()  # the commit
            now = utc_now()
            for command in batch:
                assert isinstance(command, c.RegistrationOps)
                if hasattr(command, "parts"):  # many events' turns, answered part by part
                    command.reply.settle(outcome.Value([
                        [self._confirm(part.event_id, now) for _ in part.ops]
                        for part in command.parts
                    ]))
                else:  # trees before rounds: one event's turn per command
                    command.reply.settle(outcome.Value([
                        self._confirm(command.event_id, now)  # type: ignore[attr-defined,misc]
                        for _ in command.ops  # type: ignore[attr-defined]
                    ]))

    def _confirm(self, event_id: uuid.UUID, now: Any) -> c.OpResult:
        version = self._versions[event_id] = self._versions.get(event_id, 1) + 1
        counts = EventCounts(event_id, CAPACITY, version - 1, 0, version, now)
        if "registration_id" in getattr(c.OpResult, "_fields", ()):  # the database makes ids
            return c.OpResult(uuid.uuid4(), "confirmed", now, (), counts)
        return c.OpResult("confirmed", now, (), counts)  # type: ignore[call-arg]


async def measure(events: int, askers: int, registrations: int) -> float:
    """µs of CPU per registration."""
    now = utc_now()
    held = {}
    for _ in range(events):
        event = Event(uuid.uuid4(), "Bench", "", now + timedelta(days=365), 60, "Hall",
                      CAPACITY, 0, 0, 1, now, now)
        held[event.id] = event

    async def load(event_id: uuid.UUID) -> Event | None:
        return held.get(event_id)

    writer = InstantWriter()
    # Supervisor(load, writer.offer, …) since actors offer turns; writer.submit before.
    queue = writer.offer if "offer" in inspect.signature(Supervisor).parameters else writer.submit
    supervisor = Supervisor(load, queue, lambda change: None)  # type: ignore[arg-type]
    ids = list(held)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        await nursery.start(supervisor.run)
        for event_id in ids:
            await supervisor.get_event(event_id)
        numbers = iter(range(registrations))

        async def asker() -> None:
            for n in numbers:
                register = functools.partial(m.Register, uuid.uuid4(), uuid.uuid4(), False)
                await supervisor.ask(ids[n % len(ids)], register)

        gc.collect()
        started = time.process_time()
        async with trio.open_nursery() as askers_nursery:
            for _ in range(askers):
                askers_nursery.start_soon(asker)
        used = time.process_time() - started
        nursery.cancel_scope.cancel()
    return 1e6 * used / registrations


def figures(registrations: int) -> dict[str, float]:
    return {
        shape: trio.run(measure, events, askers, registrations)
        for shape, (events, askers) in SHAPES.items()
    }


def _run_tree(tree: Path, registrations: int) -> dict[str, float]:
    """The figures of the tree at ``tree``: this script, in a fresh process, with its eventd."""
    done = subprocess.run(
        [sys.executable, __file__, "--registrations", str(registrations), "--raw"],
        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True, text=True, check=True,
    )
    return {k: float(v) for k, v in (line.split() for line in done.stdout.splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registrations", type=int, default=30_000)
    parser.add_argument("--baseline", help="a commit to compare with, run interleaved")
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw:
        for shape, value in figures(args.registrations).items():
            print(shape, value)
        return
    if not args.baseline:
        for shape, value in figures(args.registrations).items():
            print(f"{shape}: {value:.1f} µs of CPU per registration in the actor layer")
        return
    from bench.harness import checkout  # not at the top: the baseline's bench runs this file

    here = Path(__file__).resolve().parent.parent
    with checkout(args.baseline) as tree:
        rounds = [(_run_tree(tree, args.registrations), _run_tree(here, args.registrations))
                  for _ in range(3)]
    for shape in SHAPES:
        base = sorted(r[0][shape] for r in rounds)[1]
        this = sorted(r[1][shape] for r in rounds)[1]
        print(f"{shape}: {base:.1f} µs at {args.baseline}, {this:.1f} µs here"
              f" (median of 3, interleaved): {this / base:.2f}×")


if __name__ == "__main__":
    main()
