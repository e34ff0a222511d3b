"""A lean HTTP/1.1 load generator: keep-alive connections on raw trio sockets.

Run as a separate process so the load's CPU is not the daemon's:

    python -m bench.loadgen JOBS.json RESULT.json

JOBS.json: {"urls": [...], "connections": N, "requests": [[path, body], ...]}.
Each request (a POST) is sent once; the result lists (status, seconds) per
request and the wall time from first send to last answer. :class:`Connection`
is the client itself, shared with the open-loop generator (bench.open_loop).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from typing import Any

import trio

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class Connection:
    """One keep-alive HTTP/1.1 connection carrying one request at a time.

    Only what the benchmarks need: answers with a Content-Length (the daemon's
    every answer), no chunked bodies, no pipelining — far cheaper per request
    than a general client, so the load process is not what gets measured.
    """

    def __init__(self, stream: trio.SocketStream, netloc: str) -> None:
        self._stream = stream
        self._netloc = netloc
        self._buffer = b""

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urllib.parse.urlsplit(url)
        assert parts.hostname in LOOPBACK_HOSTS, "loopback only"
        stream = await trio.open_tcp_stream(parts.hostname, parts.port or 80)
        return cls(stream, parts.netloc)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def request(self, method: str, path: str, body: bytes = b"") -> int:
        """Send one request, read its whole answer; its status."""
        status, _ = await self.exchange(method, path, body)
        return status

    async def exchange(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        """Send one request (``headers``: more lines, each ending in CRLF); (status, body)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._netloc}\r\n{headers}"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        await self._stream.send_all(f"{head}\r\n".encode() + body)
        while b"\r\n\r\n" not in self._buffer:
            await self._receive()
        answer_head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        status = int(answer_head.split(b" ", 2)[1])
        length = 0
        for line in answer_head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self._buffer) < length:
            await self._receive()
        answer, self._buffer = self._buffer[:length], self._buffer[length:]
        return status, answer

    async def _receive(self) -> None:
        data = await self._stream.receive_some(65536)
        if not data:
            raise ConnectionError("the server closed the connection mid-answer")
        self._buffer += data


async def _worker(
    url: str,
    queue: trio.MemoryReceiveChannel[tuple[int, str, bytes]],
    results: list[tuple[int, float] | None],
) -> None:
    connection = await Connection.open(url)
    try:
        async for index, path, body in queue:
            started = time.perf_counter()
            status = await connection.request("POST", path, body)
            results[index] = (status, time.perf_counter() - started)
    finally:
        await connection.aclose()


async def run(urls: list[str], connections: int, requests: list[tuple[str, str]]) -> dict[str, Any]:
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
