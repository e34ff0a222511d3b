"""A lean HTTP/1.1 load generator: keep-alive connections on raw trio sockets.

Run as a separate process so the load's CPU is not the daemon's:

    python -m bench.loadgen JOBS.json RESULT.json

JOBS.json: {"urls": [...], "connections": N, "requests": [[path, body], ...]}.
Each request is sent once; the result lists (status, seconds) per request and
the wall time from first send to last answer.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse

import trio


async def _worker(
    url: str, queue: trio.MemoryReceiveChannel[tuple[int, str, bytes]],
    results: list[tuple[int, float] | None],
) -> None:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
    stream = await trio.open_tcp_stream(parts.hostname, parts.port or 80)
    buffer = b""
    async with stream:
        async for index, path, body in queue:
            request = (
                f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            await stream.send_all(request)
            while b"\r\n\r\n" not in buffer:
                buffer += await stream.receive_some(65536)
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                buffer += await stream.receive_some(65536)
            buffer = buffer[length:]
            results[index] = (status, time.perf_counter() - started)


async def run(urls: list[str], connections: int, requests: list[tuple[str, str]]) -> dict:
    send, receive = trio.open_memory_channel[tuple[int, str, bytes]](len(requests))
    for index, (path, body) in enumerate(requests):
        send.send_nowait((index, path, body.encode()))
    send.close()
    results: list[tuple[int, float] | None] = [None] * len(requests)
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for n in range(connections):
            nursery.start_soon(_worker, urls[n % len(urls)], receive.clone(), results)
    wall = time.perf_counter() - started
    return {"wall_seconds": wall, "results": results}


def main() -> None:
    jobs = json.loads(open(sys.argv[1]).read())
    out = trio.run(run, jobs["urls"], jobs["connections"], [tuple(r) for r in jobs["requests"]])
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
