"""Many waiting-room subscribers of one event, in one lean process.

    python -m bench.queue_subscribers URL EVENT_ID COUNT RESULT.json

Opens COUNT raw connections to /ws/events/EVENT_ID, with the same minimal
client as bench.ws_subscribers (the handshake by hand, unmasked server frames
parsed directly), prints "ready" once every snapshot arrived, then records
for every ``queueUpdate`` its ``at`` (the database's clock when the daemon
computed it) and its delay from ``at`` to arrival. Reads the moment to stop
(epoch seconds) from a line on stdin, stops then and writes RESULT.json.

:func:`open_queue_subscribers` starts that process from a benchmark and
waits for "ready".
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import resource
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import trio

from bench.ws_subscribers import _epoch, next_frame

QUEUE_AT = re.compile(rb'"type":"queueUpdate","eventId":"[^"]+","at":"([^"]+)"')
CONNECTS_PER_PAUSE = 100  # then a pause: a flood of connects overflows the accept queue
PAUSE_SECONDS = 0.1
CONNECT_ATTEMPTS = 5
SNAPSHOT_SECONDS = 60.0  # from connect to snapshot, or the attempt is given up


async def subscriber(
    host: str, port: int, path: str, ready: trio.Semaphore, held: list[bool],
    ats: list[float], delays: list[float],
) -> None:
    """One subscriber; a connection refused or reset before its snapshot is tried again.

    One that never gets its snapshot still releases ``ready`` (it is counted as not
    held: it records nothing); one dropped later records what it got.
    """
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            await _subscribe(host, port, path, ready, held, ats, delays)
            return
        except (OSError, trio.BrokenResourceError):
            if held:
                return  # dropped after its snapshot: what it got is its result
            if attempt == CONNECT_ATTEMPTS - 1:
                ready.release()  # never held: counted as such
                return
            await trio.sleep(0.2 * (attempt + 1))


async def _subscribe(
    host: str, port: int, path: str, ready: trio.Semaphore, held: list[bool],
    ats: list[float], delays: list[float],
) -> None:
    with trio.CancelScope(deadline=trio.current_time() + SNAPSHOT_SECONDS) as waiting:
        await _follow(host, port, path, ready, held, ats, delays, waiting)
    if waiting.cancelled_caught:
        raise TimeoutError("no snapshot in time")


async def _follow(
    host: str, port: int, path: str, ready: trio.Semaphore, held: list[bool],
    ats: list[float], delays: list[float], waiting: trio.CancelScope,
) -> None:
    async with await trio.open_tcp_stream(host, port) as stream:
        await _read(stream, host, port, path, ready, held, ats, delays, waiting)


async def _read(
    stream: trio.SocketStream, host: str, port: int, path: str, ready: trio.Semaphore,
    held: list[bool], ats: list[float], delays: list[float], waiting: trio.CancelScope,
) -> None:
    await stream.send_all(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive_some(65536)
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    assert b" 101 " in head.split(b"\r\n")[0], head
    while True:
        while (frame := next_frame(buffer)) is not None:  # whole frames from the buffer
            opcode, payload, buffer = frame
            if opcode == 0x8:
                return
            if opcode == 0x9:  # ping: answer, masked as a client must
                await stream.send_all(b"\x8a\x80\x00\x00\x00\x00")
                continue
            if opcode != 0x1:
                continue
            arrived = time.time()
            if not held:
                held.append(True)
                waiting.deadline = math.inf
                ready.release()
                continue
            match = QUEUE_AT.search(payload)
            if match:
                at = _epoch(match[1])
                ats.append(at)
                delays.append(arrived - at)
        data = await stream.receive_some(65536)
        if not data:
            return
        buffer += data


async def main(url: str, event_id: str, count: int, result_path: str) -> None:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ready = trio.Semaphore(0, max_value=count)
    per_connection: list[tuple[list[bool], list[float], list[float]]] = [
        ([], [], []) for _ in range(count)]
    async with trio.open_nursery() as nursery:
        for n in range(count):
            nursery.start_soon(subscriber, parts.hostname, parts.port or 80,
                               f"/ws/events/{event_id}", ready, *per_connection[n])
            if n % CONNECTS_PER_PAUSE == CONNECTS_PER_PAUSE - 1:
                await trio.sleep(PAUSE_SECONDS)
        for _ in range(count):
            await ready.acquire()
        print("ready", flush=True)
        until = float(await trio.to_thread.run_sync(sys.stdin.readline))
        await trio.sleep(max(0.0, until - time.time()))
        nursery.cancel_scope.cancel()
    result = {"connections": [{"held": bool(h), "ats": a, "delays": d}
                              for h, a, d in per_connection]}
    await trio.Path(result_path).write_text(json.dumps(result))


def start_queue_subscribers(
    url: str, event_id: str, count: int, result_path: Path
) -> subprocess.Popen[str]:
    """COUNT subscribers in a process of their own; see :func:`await_ready`, :func:`stop_at`."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.queue_subscribers", url, event_id, str(count),
         str(result_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def await_ready(process: subprocess.Popen[str]) -> None:
    """Until every subscriber of ``process`` is past its snapshot."""
    assert process.stdout is not None
    ready = process.stdout.readline().strip()
    if ready != "ready":
        raise RuntimeError(f"subscribers did not get ready: {ready!r}")


def stop_at(process: subprocess.Popen[str], until: float) -> None:
    """Tell ``process`` to stop at ``until`` (epoch seconds) and write its result."""
    assert process.stdin is not None
    process.stdin.write(f"{until!r}\n")
    process.stdin.flush()


@contextlib.contextmanager
def killed_at_exit(processes: list[subprocess.Popen[str]]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
