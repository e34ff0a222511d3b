"""server.workers = 2: two daemon processes on one port, one parent that keeps them running."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
import trio

from eventd.logs import JsonFormatter
from tests.support import DaemonProcess
from tests.test_invariant import (
    create_event,
    database_truth,
    logs_on_failure,
    make_attendees,
    storm,
)

pytestmark = pytest.mark.slow


def workers_of(parent: int) -> list[int]:
    with open(f"/proc/{parent}/task/{parent}/children") as children:
        return [int(pid) for pid in children.read().split()]


def wait_for_workers(parent: int, count: int, other_than: set[int] = frozenset()) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = workers_of(parent)
        if len(pids) == count and not set(pids) & other_than:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"expected {count} workers, found {workers_of(parent)}")


async def test_two_workers_share_the_port_and_never_overbook(
    fresh_database_url: str, workdir: Path
):
    daemon = DaemonProcess(fresh_database_url, workdir, server={"workers": 2}).start()
    try:
        assert daemon.process is not None
        first = await trio.to_thread.run_sync(wait_for_workers, daemon.process.pid, 2)
        event_id = await create_event(daemon.url, capacity=50)
        attendees = await make_attendees(fresh_database_url, 300)
        with logs_on_failure(daemon):
            responses = await storm([daemon.url], event_id, attendees)
        assert sorted(r.status_code for r in responses).count(201) == 50
        counts, (confirmed, _waitlisted, rows) = await trio.to_thread.run_sync(
            database_truth, fresh_database_url, event_id)
        assert confirmed == rows == 50

        # A worker killed by a signal is started again; the port keeps answering.
        os.kill(first[0], signal.SIGKILL)
        again = await trio.to_thread.run_sync(
            lambda: wait_for_workers(daemon.process.pid, 2, {first[0]}))
        assert first[1] in again
        async with httpx.AsyncClient(base_url=daemon.url) as client:
            for _ in range(20):  # new connections land on either worker
                assert (await client.get("/health", headers={"Connection": "close"})
                        ).status_code == 200
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()
    log = daemon.log()
    assert f"starting 2 workers; config: {daemon.config_path}; no EVENTD_* overrides" in log
    assert "worker 1 running" in log
    assert "worker 2 running" in log
    # Each worker says which one speaks, from its first line on.
    for number in (1, 2):
        assert f"[worker {number}] eventd: eventd " in log
        assert f"[worker {number}] eventd: listening on {daemon.url}" in log
    assert "all workers stopped" in log


def test_the_bare_command_runs_workers_from_the_environment(fresh_database_url: str, workdir: Path):
    """`EVENTD_SERVER_WORKERS=2 eventd` — no subcommand, no --config: the README's way."""
    daemon = DaemonProcess(fresh_database_url, workdir)  # for its config file, port and log
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTD_")}
    env.update(EVENTD_CONFIG=str(daemon.config_path), EVENTD_SERVER_WORKERS="2")
    with open(daemon.log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "eventd"], stdout=log,
                                   stderr=subprocess.STDOUT, env=env, cwd=workdir)
    try:
        wait_for_workers(process.pid, 2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{daemon.url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError(daemon.log())
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    assert code == 0, daemon.log()
    assert "all workers stopped" in daemon.log()


def test_a_workers_json_log_lines_carry_its_number():
    record = logging.LogRecord("eventd", logging.INFO, __file__, 1, "listening on %s", ("x",), None)
    entry = orjson.loads(JsonFormatter(worker=2).format(record))
    assert (entry["worker"], entry["message"]) == (2, "listening on x")
    assert "worker" not in orjson.loads(JsonFormatter().format(record))
