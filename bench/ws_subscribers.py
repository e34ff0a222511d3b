"""Many WebSocket subscribers to one event, in one lean process.

    python -m bench.ws_subscribers URL EVENT_ID COUNT LAST_SEQ RESULT.json

Opens COUNT raw connections to /ws/events/EVENT_ID (a minimal client: the
handshake by hand, unmasked server frames parsed directly), prints "ready"
once every snapshot arrived, then records, for every message, its seq and the
delay from its ``at`` (stamped by the daemon right after COMMIT) to arrival.
Stops when every connection has seen LAST_SEQ, or after 120 s.

:func:`open_subscribers` starts that process from a benchmark and waits for
"ready".
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import trio

SEQ_AT = re.compile(rb'"seq":(\d+),"at":"([^"]+)"')



def next_frame(buffer: bytes) -> tuple[int, bytes, bytes] | None:
    """The first whole server frame in ``buffer`` (unmasked): its opcode, its
    payload and the bytes after it; None while it is still incomplete."""
    if len(buffer) < 2:
        return None
    opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, offset = int.from_bytes(buffer[2:4], "big"), 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length, offset = int.from_bytes(buffer[2:10], "big"), 10
    if len(buffer) < offset + length:
        return None
    return opcode, buffer[offset : offset + length], buffer[offset + length :]

def _epoch(stamp: bytes) -> float:
    return datetime.fromisoformat(stamp.decode().replace("Z", "+00:00")).timestamp()


async def subscriber(
    host: str,
    port: int,
    path: str,
    last_seq: int,
    ready: trio.Semaphore,
    seqs: list[int],
    delays: list[float],
) -> None:
    stream = await trio.open_tcp_stream(host, port)
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
    snapshot_seen = False
    while True:
        while (frame := next_frame(buffer)) is not None:  # whole frames from the buffer
            opcode, payload, buffer = frame
            if opcode == 0x8:
                return
            if opcode != 0x1:
                continue
            arrived = time.time()
            match = SEQ_AT.search(payload)
            assert match, payload[:200]
            seq = int(match[1])
            if not snapshot_seen:
                snapshot_seen = True
                ready.release()
            else:
                seqs.append(seq)
                delays.append(arrived - _epoch(match[2]))
            if seq >= last_seq:
                await stream.aclose()
                return
        data = await stream.receive_some(65536)
        if not data:
            return
        buffer += data


async def main(url: str, event_id: str, count: int, last_seq: int, result_path: str) -> None:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
    ready = trio.Semaphore(0, max_value=count)
    per_connection: list[tuple[list[int], list[float]]] = [([], []) for _ in range(count)]
    started = None
    with trio.move_on_after(120):
        async with trio.open_nursery() as nursery:
            for n in range(count):
                nursery.start_soon(
                    subscriber,
                    parts.hostname,
                    parts.port or 80,
                    f"/ws/events/{event_id}",
                    last_seq,
                    ready,
                    *per_connection[n],
                )
                if n % 100 == 99:
                    await trio.sleep(0.05)  # don't flood the accept queue
            for _ in range(count):
                await ready.acquire()
            print("ready", flush=True)
            started = time.time()
    wall = time.time() - (started or time.time())
    result = {
        "wall_seconds": wall,
        "connections": [{"seqs": s, "delays": d} for s, d in per_connection],
    }
    await trio.Path(result_path).write_text(json.dumps(result))


@contextlib.contextmanager
def open_subscribers(
    url: str, event_id: str, count: int, last_seq: int, result_path: Path
) -> Iterator[subprocess.Popen[str]]:
    """COUNT subscribers in their own process, every one past its snapshot.

    Leaving the block waits for the process (it ends on LAST_SEQ or after 120 s)
    unless it is told to stop sooner with ``terminate()``.
    """
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.ws_subscribers",
            url,
            event_id,
            str(count),
            str(last_seq),
            str(result_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().strip()
        if ready != "ready":
            raise RuntimeError(f"subscribers did not get ready: {ready!r}")
        yield process
        process.wait(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
