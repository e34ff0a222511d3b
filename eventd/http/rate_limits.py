"""Per-client rate limit: one token bucket per client address.

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
"""

from __future__ import annotations

import dataclasses
import math

import trio
from quart import request, websocket
from quart_trio import QuartTrio

from eventd.config import LimitsConfig
from eventd.errors import RateLimited

BURST_SECONDS = 1.0
MAX_TRACKED_CLIENTS = 100_000
EXEMPT_PATHS = frozenset({"/health", "/metrics"})


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
