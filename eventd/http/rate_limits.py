"""Per-client limits: a rate of requests, and a count of connections.

**The rate.** One token bucket per client address.

``limits.requests_per_second_per_client`` = *r* (0 turns the limit off). Each
client address has a bucket of ``max(1, r × BURST_SECONDS)`` tokens — a
second's worth, so a client may burst what it may sustain — refilled at *r*
per second. A request takes a token, or is answered ``429 rate_limited`` with
``Retry-After``: the whole seconds until a token is back, at least 1.

- **Who is a client**: the TCP peer address. ``X-Forwarded-For`` is not
  trusted (anyone can write it); behind a proxy every client shares the
  proxy's bucket, so limit at the proxy instead.
- **Exempt**: ``/health`` and ``/metrics``. A load balancer or scraper that
  shares an address with a busy client must still see the daemon's health; a
  429 there would take a healthy daemon out of rotation.
- **WebSocket handshakes** take a token like requests, from the same bucket
  (Quart's ``before_websocket``): one over the rate is refused ``429`` before
  the upgrade.
- **Memory**: a bucket idle long enough to have refilled is the same as a new
  one, so it is forgotten. Buckets are kept in least-recently-seen order and
  forgotten from the front, so memory follows the clients seen in the last
  refill period (``burst / r`` seconds). :data:`MAX_TRACKED_CLIENTS` caps it
  outright: past it, the least recently seen client is forgotten and at worst
  gets a fresh burst.
- **Time** is trio's clock, so tests drive the bucket with ``MockClock``.

**The connections.** :class:`ConnectionLimiter` counts the open TCP
connections, in all and by client address, for ``server.max_connections`` and
``server.max_connections_per_client`` (0: no cap). The serve loop
(:mod:`eventd.http.server`) asks it as it accepts each connection, before
reading a byte: a connection beyond either cap is refused there. A connection
counts from its accept to its end, whatever it sends or does not send yet, so
a client trickling its headers holds one of its own slots until the header
timeout ends it. The counts are this process's: each worker counts its own.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Literal

import trio
from quart import request, websocket
from quart_trio import QuartTrio

from eventd.config import LimitsConfig
from eventd.errors import RateLimited

BURST_SECONDS = 1.0
MAX_TRACKED_CLIENTS = 100_000
EXEMPT_PATHS = frozenset({"/health", "/metrics"})
CONNECTIONS_EXTENSION = "eventd.connections"  # the app's ConnectionLimiter, set by the serve loop


@dataclasses.dataclass
class _Bucket:
    tokens: float
    seen_at: float


@dataclasses.dataclass(frozen=True)
class RateLimiterStatistics:
    tracked_clients: int


class RateLimiter:
    """Token buckets by client; :meth:`take` says whether a request may go ahead."""

    def __init__(self, rate_per_second: float, *, max_clients: int = MAX_TRACKED_CLIENTS) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be > 0")
        self.rate_per_second = rate_per_second
        self.burst = max(1.0, rate_per_second * BURST_SECONDS)
        self._refill_seconds = self.burst / rate_per_second
        self._max_clients = max_clients
        # Insertion order is least recently seen first.
        self._buckets: dict[str, _Bucket] = {}

    def take(self, client: str) -> int:
        """Take a token for ``client``: 0 if granted, else whole seconds to wait (≥ 1)."""
        now = trio.current_time()
        self._forget_refilled(now)
        bucket = self._buckets.pop(client, None)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
        else:
            elapsed = now - bucket.seen_at
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate_per_second)
            bucket.seen_at = now
        self._buckets[client] = bucket  # now the most recently seen
        if len(self._buckets) > self._max_clients:
            del self._buckets[next(iter(self._buckets))]
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / self.rate_per_second))

    def _forget_refilled(self, now: float) -> None:
        # Tokens never go below 0, so a bucket unseen for a refill period is full.
        while self._buckets:
            client, oldest = next(iter(self._buckets.items()))
            if now - oldest.seen_at < self._refill_seconds:
                return
            del self._buckets[client]

    def statistics(self) -> RateLimiterStatistics:
        return RateLimiterStatistics(tracked_clients=len(self._buckets))


def install(app: QuartTrio, limits: LimitsConfig) -> RateLimiter | None:
    """Refuse requests over the per-client rate; nothing when the limit is 0."""
    rate = limits.requests_per_second_per_client
    if rate <= 0:
        return None
    limiter = RateLimiter(rate)

    def take(client: str | None) -> None:
        wait_seconds = limiter.take(client or "")
        if wait_seconds:
            raise RateLimited(
                f"More than {rate:g} requests per second from this address;"
                f" retry in {wait_seconds} s.",
                retry_after_seconds=wait_seconds,
            )

    @app.before_request
    async def limit_rate() -> None:
        if request.path not in EXEMPT_PATHS:
            take(request.remote_addr)

    @app.before_websocket
    async def limit_handshakes() -> None:
        take(websocket.remote_addr)  # the refusal is the handshake's answer: no upgrade

    return limiter


Cap = Literal["max_connections", "max_connections_per_client"]


@dataclasses.dataclass(frozen=True)
class ConnectionLimiterStatistics:
    open_connections: int
    clients: int  # addresses with a connection open
    max_connections: int  # 0: no cap
    max_connections_per_client: int
    refused: dict[Cap, int]  # connections refused since start, by the cap that refused them


class ConnectionLimiter:
    """Open connections, in all and by client address, each under its cap (0: none)."""

    def __init__(self, max_connections: int, max_connections_per_client: int) -> None:
        if max_connections < 0 or max_connections_per_client < 0:
            raise ValueError("caps must be ≥ 0")
        self.max_connections = max_connections
        self.max_connections_per_client = max_connections_per_client
        self._open = 0
        # Only clients with a connection open (a Counter's lookup of another adds nothing).
        self._by_client: Counter[str] = Counter()
        self._refused: dict[Cap, int] = {"max_connections": 0, "max_connections_per_client": 0}

    def open_nowait(self, client: str) -> Cap | None:
        """Count a new connection from ``client``; or, refused, the cap that refuses it."""
        cap: Cap | None = None
        if 0 < self.max_connections <= self._open:
            cap = "max_connections"
        elif 0 < self.max_connections_per_client <= self._by_client[client]:
            cap = "max_connections_per_client"
        if cap is not None:
            self._refused[cap] += 1
            return cap
        self._open += 1
        self._by_client[client] += 1
        return None

    def close(self, client: str) -> None:
        """A connection :meth:`open_nowait` admitted has ended."""
        self._open -= 1
        self._by_client[client] -= 1
        if not self._by_client[client]:
            del self._by_client[client]

    def statistics(self) -> ConnectionLimiterStatistics:
        return ConnectionLimiterStatistics(
            open_connections=self._open,
            clients=len(self._by_client),
            max_connections=self.max_connections,
            max_connections_per_client=self.max_connections_per_client,
            refused=dict(self._refused),
        )
