"""``eventd watch``: the real command, as a subprocess, against a real daemon.

Rules: loopback only; the command runs with no config file and no EVENTD_*
variables (it must need neither); every wait is bounded by ``fail_after``;
what is checked is what the command printed, read from its pipes (so it must
print plain lines, no escape codes, when stdout is not a terminal).
Reconnecting and giving up are also driven in this process, against a
trio-websocket server or a closed port, with the autojump clock.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from eventd.cli.watch import (
    GIVE_UP_SECONDS,
    Follower,
    Screen,
    WatchError,
    capacity_bar,
    counts_text,
    follow,
    log_line,
    stream_url,
)
from tests.conftest import create_attendee, create_event, register
from tests.support import DaemonProcess, free_port, run_sql

WAIT_SECONDS = 20


class Watch:
    """A running ``eventd watch``, its output gathered line by line as it comes."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.out: list[str] = []
        self.err: list[str] = []

    async def gather(self, stream: trio.abc.ReceiveStream, lines: list[str]) -> None:
        pending = b""
        async for chunk in stream:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            lines.extend(line.decode() for line in complete)
        if pending:
            lines.append(pending.decode())

    async def wait_for_line(self, pattern: str, where: str = "out") -> str:
        """The first line (stdout or stderr) matching ``pattern``, once printed."""
        lines = self.out if where == "out" else self.err
        with trio.fail_after(WAIT_SECONDS):
            while True:
                for line in lines:
                    if re.search(pattern, line):
                        return line
                if self.process.returncode is not None:
                    await trio.sleep(0.1)  # let the readers take the last output
                    found = [line for line in lines if re.search(pattern, line)]
                    assert found, f"exited {self.process.returncode} without {pattern!r}:\n{self}"
                    return found[0]
                await trio.sleep(0.02)

    async def wait_exit(self) -> int:
        with trio.fail_after(WAIT_SECONDS):
            code = await self.process.wait()
        await trio.sleep(0.1)  # the readers reach end of file
        return code

    def __str__(self) -> str:
        return "stdout:\n" + "\n".join(self.out) + "\nstderr:\n" + "\n".join(self.err)


@contextlib.asynccontextmanager
async def watching(event_id: str, url: str, cwd: Path, **extra_env: str) -> AsyncIterator[Watch]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTD_")} | extra_env
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "eventd", "watch", event_id, "--url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    watch = Watch(process)
    async with trio.open_nursery() as nursery:
        assert process.stdout is not None
        assert process.stderr is not None
        nursery.start_soon(watch.gather, process.stdout, watch.out)
        nursery.start_soon(watch.gather, process.stderr, watch.err)
        try:
            yield watch
        finally:
            if process.returncode is None:
                process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
    await process.stdout.aclose()
    await process.stderr.aclose()


def seqs(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.search(r" seq (\d+) ", line))]


async def test_prints_the_snapshot_then_every_change_and_exits_0_on_delete(
    client: httpx.AsyncClient, daemon: DaemonProcess, tmp_path: Path
):
    name = f"Watched {uuid.uuid4().hex[:8]}"
    event = await create_event(client, name=name, maxAttendees=3)
    async with watching(event["id"], daemon.url, tmp_path) as watch:
        await watch.wait_for_line(r"capacity: \[\.+\] 0/3 registered, 3 available, 0 waitlisted")
        assert watch.out[0] == name
        assert any(event["location"] in line for line in watch.out)
        assert any(event["date"] in line for line in watch.out)

        for _ in range(4):
            attendee = await create_attendee(client)
            response = await register(client, event["id"], attendee["id"], waitlist=True)
            assert response.status_code == 201, response.text
        await watch.wait_for_line(r"eventCapacityUpdate +seq 2  1/3 registered, 2 available")
        await watch.wait_for_line(r"seq 3  2/3 registered, 1 available, 0 waitlisted  ALMOST FULL")
        await watch.wait_for_line(r"seq 4  3/3 registered, 0 available, 0 waitlisted  FULL")
        await watch.wait_for_line(r"seq 5  3/3 registered, 0 available, 1 waitlisted  FULL")

        renamed = await client.patch(f"/events/{event['id']}", json={"name": "Renamed"})
        assert renamed.status_code == 200
        await watch.wait_for_line(r"eventUpdated +seq 6  Renamed \| ")

        assert (await client.delete(f"/events/{event['id']}")).status_code == 204
        assert await watch.wait_exit() == 0, str(watch)
    assert re.search(r"eventDeleted +seq 7 ", watch.out[-1]), str(watch)
    assert seqs(watch.out) == [2, 3, 4, 5, 6, 7]
    assert not any("\x1b" in line for line in watch.out + watch.err), "escape codes in a pipe"
    assert watch.err == []


async def test_unknown_event_exits_1_with_a_message(daemon: DaemonProcess, tmp_path: Path):
    missing = str(uuid.uuid4())
    # The daemon's configuration is none of watch's business, broken or not.
    broken = {"EVENTD_CONFIG": str(tmp_path / "missing.toml"), "EVENTD_DATABASE_URL": "nope"}
    async with watching(missing, daemon.url, tmp_path, **broken) as watch:
        assert await watch.wait_exit() == 1
    assert watch.out == []
    assert len(watch.err) == 1, str(watch)
    assert f"Event {missing} does not exist" in watch.err[0]
    assert "404" in watch.err[0]


async def test_ctrl_c_exits_130_without_a_traceback(
    client: httpx.AsyncClient, daemon: DaemonProcess, tmp_path: Path
):
    event = await create_event(client)
    # A ws:// URL with a trailing slash is as good as the http:// one.
    url = daemon.url.replace("http://", "ws://") + "/"
    async with watching(event["id"], url, tmp_path) as watch:
        await watch.wait_for_line(r"capacity: ")
        watch.process.send_signal(signal.SIGINT)
        assert await watch.wait_exit() == 130
    assert not any("Traceback" in line for line in watch.err), str(watch)


@pytest.mark.slow
async def test_resumes_with_since_when_the_daemon_restarts(fresh_database_url: str, workdir: Path):
    daemon = DaemonProcess(fresh_database_url, workdir)
    await trio.to_thread.run_sync(daemon.start)
    try:
        async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
            event = await create_event(client, maxAttendees=5)
            attendees = [await create_attendee(client) for _ in range(3)]
            async with watching(event["id"], daemon.url, workdir) as watch:
                await watch.wait_for_line(r"capacity: .* 0/5 registered")
                assert (await register(client, event["id"], attendees[0]["id"])).status_code == 201
                await watch.wait_for_line(r"seq 2  1/5 registered")

                # Same port, same database: the watcher sees it go and come back.
                assert await trio.to_thread.run_sync(daemon.stop) == 0, daemon.log()
                await watch.wait_for_line(r"connection closed \(1001", where="err")
                await watch.wait_for_line(r"cannot reach .*\?since=2", where="err")
                await trio.to_thread.run_sync(daemon.start)
                await watch.wait_for_line(r"^eventd watch: reconnected; resuming after seq 2$",
                                          where="err")

                async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as again:
                    for attendee in attendees[1:]:
                        response = await register(again, event["id"], attendee["id"])
                        assert response.status_code == 201, response.text
                    await watch.wait_for_line(r"seq 4  3/5 registered")

                # Gone while the daemon was down (no eventDeleted to hear): done, too.
                assert await trio.to_thread.run_sync(daemon.stop) == 0, daemon.log()
                await trio.to_thread.run_sync(
                    run_sql,
                    fresh_database_url,
                    "DELETE FROM events WHERE id = $1",
                    uuid.UUID(event["id"]),
                )
                await trio.to_thread.run_sync(daemon.start)
                assert await watch.wait_exit() == 0, str(watch)
    finally:
        assert await trio.to_thread.run_sync(daemon.stop) == 0, daemon.log()
    # Whether seq 3 came as a replay or was folded into a fresh snapshot, nothing
    # is shown twice and nothing goes back.
    shown = seqs(watch.out)
    assert shown == sorted(set(shown)), str(watch)
    assert shown[0] == 2
    assert shown[-1] == 4
    assert "deleted while disconnected" in watch.err[-1], str(watch)


# --- reconnecting and giving up, against sockets in this process (autojump clock) --------


def message(kind: str, seq: int, data: dict[str, object]) -> str:
    return json.dumps(
        {"type": kind, "eventId": "E", "seq": seq, "at": "2027-01-01T10:00:00Z", "data": data}
    )


EVENT = {"id": "E", "name": "N", "date": "D", "endsAt": "F", "location": "L"}


async def test_says_once_that_it_reconnected_and_where_it_resumes(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
):
    paths: list[str] = []

    async def stream(request: WebSocketRequest) -> None:
        ws = await request.accept()
        paths.append(request.path)
        if len(paths) == 1:  # a snapshot, then the daemon goes away
            await ws.send_message(message("snapshot", 2, {**EVENT, **counts(1)}))
            await ws.aclose(1001, "going away")
            return
        await ws.send_message(message("eventCapacityUpdate", 3, counts(2)))
        await ws.send_message(message("eventDeleted", 4, {}))
        with contextlib.suppress(ConnectionClosed):
            await ws.get_message()  # until the watcher, done, closes

    server = await nursery.start(serve_websocket, stream, "127.0.0.1", 0, None)
    out, err = io.StringIO(), io.StringIO()
    with trio.fail_after(60):
        await follow(stream_url(f"http://127.0.0.1:{server.port}", "E"), Screen(out, err))
    assert paths == ["/ws/events/E", "/ws/events/E?since=2"]
    assert err.getvalue().splitlines() == [
        "eventd watch: connection closed (1001 GOING_AWAY); reconnecting in 0.5s",
        "eventd watch: reconnected; resuming after seq 2",
    ]
    assert seqs(out.getvalue().splitlines()) == [3, 4]


async def test_gives_up_when_the_url_never_answered(autojump_clock: trio.testing.MockClock):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    err = io.StringIO()
    with pytest.raises(WatchError, match=f"has not answered in {GIVE_UP_SECONDS:g}s"):
        await follow(stream_url(closed, "E"), Screen(io.StringIO(), err))
    retries = err.getvalue().splitlines()
    assert len(retries) > 1
    assert all("cannot reach" in line and "retrying" in line for line in retries)


async def test_the_bound_on_giving_up_is_a_keyword(autojump_clock: trio.testing.MockClock):
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(WatchError, match="has not answered in 2s"):
        await follow(stream_url(closed, "E"), Screen(io.StringIO(), io.StringIO()),
                     give_up_seconds=2)


# --- formatting, without a daemon ------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:3000", "ws://127.0.0.1:3000/ws/events/E"),
        ("https://events.example/", "wss://events.example/ws/events/E"),
        ("ws://[::1]:3000", "ws://[::1]:3000/ws/events/E"),
        ("WSS://h/prefix/", "wss://h/prefix/ws/events/E"),
    ],
)
def test_stream_url_maps_the_daemon_url_to_the_event_stream(given: str, expected: str):
    assert stream_url(given, "E") == expected


@pytest.mark.parametrize("bad", ["ftp://h", "127.0.0.1:3000", "http://"])
def test_stream_url_refuses_what_is_not_a_daemon_url(bad: str):
    with pytest.raises(WatchError, match="--url"):
        stream_url(bad, "E")


def test_capacity_bar_fills_in_proportion():
    assert capacity_bar(0, 10, width=10) == "[..........]"
    assert capacity_bar(5, 10, width=10) == "[#####.....]"
    assert capacity_bar(10, 10, width=10) == "[##########]"


def test_held_seats_show_after_the_confirmed_ones():
    assert capacity_bar(3, 10, width=10, held=2) == "[###++.....]"
    assert capacity_bar(8, 10, width=10, held=2) == "[########++]"
    line = counts_text({"maxAttendees": 10, "registeredCount": 3, "heldCount": 2,
                        "availableSpots": 5, "waitlistCount": 1, "warning": None})
    assert line == "3/10 registered, 2 held, 5 available, 1 waitlisted"


def counts(registered: int, maximum: int = 4, warning: str | None = None) -> dict[str, object]:
    return {
        "maxAttendees": maximum,
        "registeredCount": registered,
        "availableSpots": maximum - registered,
        "waitlistCount": 0,
        "warning": warning,
    }


def test_log_line_shows_time_type_seq_counts_and_warning():
    message = {
        "type": "eventCapacityUpdate",
        "eventId": "E",
        "seq": 42,
        "at": "2027-01-01T10:00:00.123Z",
        "data": counts(3, warning="almostFull"),
    }
    assert log_line(message) == (
        "10:00:00.123Z eventCapacityUpdate seq 42  "
        "3/4 registered, 1 available, 0 waitlisted  ALMOST FULL"
    )


def test_follower_skips_what_it_has_shown_and_logs_a_later_snapshot():
    out = io.StringIO()
    follower = Follower(Screen(out, io.StringIO()))
    event = {"id": "E", "name": "N", "date": "D", "endsAt": "F", "location": "L", **counts(1)}

    def message(kind: str, seq: int, data: dict[str, object]) -> dict[str, object]:
        return {
            "type": kind,
            "eventId": "E",
            "seq": seq,
            "at": "2027-01-01T10:00:00Z",
            "data": data,
        }

    follower.receive(message("snapshot", 2, event))
    follower.receive(message("eventCapacityUpdate", 3, counts(2)))
    follower.receive(message("eventCapacityUpdate", 3, counts(2)))  # replayed after a resume
    follower.receive(message("snapshot", 9, {**event, **counts(4, warning="full")}))
    lines = out.getvalue().splitlines()
    assert lines[0] == "N"
    assert [line.split()[1] for line in lines[5:]] == ["eventCapacityUpdate", "snapshot"]
    assert lines[-1].endswith("4/4 registered, 0 available, 0 waitlisted  FULL")
    assert follower.last_seq == 9
    assert follower.url("ws://h/ws/events/E") == "ws://h/ws/events/E?since=9"
