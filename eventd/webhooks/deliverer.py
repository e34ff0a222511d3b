"""The webhook deliverer: drains ``webhook_deliveries``, one endpoint at a time, in order.

An :class:`~eventd.storage.outbox.OutboxDrain`, like the mailer, with one
difference that order demands: what is claimed is an *endpoint*, not a row.
A deliverer takes the lease of every enabled endpoint whose next message is
due (``FOR UPDATE SKIP LOCKED``: any number of daemons, never two on one
endpoint), and sends that endpoint's messages oldest first, each only after
the one before it was delivered or given up. Endpoints are served side by
side, so one slow receiver delays only its own messages.

Each round of an endpoint checks its URL again (:mod:`eventd.webhooks.targets`:
the name may point elsewhere now), and each attempt
(:meth:`WebhookDeliverer.attempt`):

- connects to the very address that was checked;
- signs per Standard Webhooks with the ``standardwebhooks`` package:
  ``webhook-id`` (the row's id, the same on every attempt),
  ``webhook-timestamp`` (now), ``webhook-signature`` over the stored body;
- POSTs with httpx (trio-native: no asyncio), no redirects followed, no
  proxy from the environment, and gives up on the attempt after
  :data:`TIMEOUT_SECONDS`.

A 2xx is delivered. ``410 Gone`` disables the endpoint (the message stays
pending, for if it is enabled again). Anything else — another status, a
refused address, no answer — is retried with exponential backoff and jitter
until ``webhooks.retry_hours`` after the change, then given up, and the
endpoint's next message goes. A daemon that dies mid-send leaves the lease
to expire; the message then goes again with the same ``webhook-id``: at
least once.

Nothing here logs a URL (it may hold a token) or a secret: an endpoint is
named by its id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import trio
from standardwebhooks.webhooks import Webhook

from eventd import __version__
from eventd.errors import Unavailable
from eventd.model import utc_now
from eventd.storage.database import Database
from eventd.storage.outbox import OutboxDrain, backoff_seconds
from eventd.webhooks import targets

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
# An endpoint's lease; renewed with every message recorded, so it outlasts any one attempt.
LEASE_SECONDS = 30.0
RELEASE_SECONDS = 2.0  # to give a lease back while stopping
CLAIM_ENDPOINTS = 20  # endpoints taken per claim, each served by a task of its own
BATCH_MESSAGES = 100  # an endpoint's messages read at a time
# Delivered messages are recorded together, up to this many, or this often.
RECORD_EVERY_MESSAGES = 50
RECORD_EVERY_SECONDS = LEASE_SECONDS / 3
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 3600.0
RESPONSE_READ_BYTES = 64 * 1024  # of a receiver's answer; the rest is not read
ERROR_MAX_CHARS = 500
GONE = 410
#: The upper bounds delivery lags (change to delivery) are counted under.
LAG_SECONDS_BOUNDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                      3600.0, math.inf)


@dataclasses.dataclass(frozen=True)
class WebhookStatus:
    """The outbox as the database holds it, for /health and /metrics."""

    pending: int  # messages of enabled endpoints not yet delivered or given up
    failing_endpoints: int  # enabled endpoints whose next message failed its last attempt
    disabled_endpoints: int
    oldest_pending_seconds: float | None


@dataclasses.dataclass(frozen=True)
class DelivererStatistics:
    """What this daemon's deliverer did since it started."""

    outcomes: dict[str, int]  # attempts by outcome: delivered, failed, gave_up, gone
    lag_seconds_counts: dict[float, int]  # delivered messages by lag, under LAG_SECONDS_BOUNDS
    lag_seconds_total: float


@dataclasses.dataclass(frozen=True)
class _Endpoint:
    id: uuid.UUID
    url: str
    signer: Webhook  # holds the secret


@dataclasses.dataclass(frozen=True)
class Attempt:
    """What became of one attempt."""

    outcome: str  # delivered | failed | gone
    status: int | None = None  # the receiver's HTTP status, if it answered
    error: str | None = None


class WebhookDeliverer(OutboxDrain):
    what = "webhook"

    def __init__(
        self,
        db: Database,
        *,
        retry_hours: float,
        allow_private_targets: bool,
        now: Callable[[], datetime] = utc_now,
        backoff_base_seconds: float = BACKOFF_BASE_SECONDS,
    ) -> None:
        """``now`` is the wall clock every due time and lag is read on (tests drive it)."""
        super().__init__(db)
        self._retry = timedelta(hours=retry_hours)
        self._allow_private = allow_private_targets
        self._now = now
        self._backoff_base_seconds = backoff_base_seconds
        self._client: httpx.AsyncClient | None = None
        self._outcomes = dict.fromkeys(("delivered", "failed", "gave_up", "gone"), 0)
        self._lag_counts = dict.fromkeys(LAG_SECONDS_BOUNDS, 0)
        self._lag_total = 0.0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with self.sending():
            await super().run(task_status=task_status)

    @contextlib.asynccontextmanager
    async def sending(self) -> AsyncIterator[None]:
        """The HTTP client :meth:`send_due` sends with, open for the block."""
        async with httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # no proxy or .netrc from the environment: it could bypass the guard
            timeout=httpx.Timeout(TIMEOUT_SECONDS),
            headers={"User-Agent": f"eventd/{__version__}"},
        ) as self._client:
            try:
                yield
            finally:
                self._client = None

    async def send_due(self) -> int:
        """Serve every endpoint with a message due; returns how many messages were attempted."""
        now = self._now()
        try:
            rows = await self._db.fetch(
                "UPDATE webhook_endpoints e SET claimed_until = $1 + make_interval(secs => $2)"
                " WHERE e.id IN (SELECT c.id FROM webhook_endpoints c"
                "  WHERE c.enabled AND (c.claimed_until IS NULL OR c.claimed_until < $1)"
                "  AND (SELECT d.next_attempt_at FROM webhook_deliveries d"
                "       WHERE d.endpoint_id = c.id AND d.delivered_at IS NULL"
                "       AND d.given_up_at IS NULL ORDER BY d.seq LIMIT 1) <= $1"
                "  LIMIT $3 FOR UPDATE SKIP LOCKED)"
                " RETURNING e.id, e.url, e.secret",
                now, LEASE_SECONDS, CLAIM_ENDPOINTS,
            )
        except Unavailable:
            return 0  # the database is away; the messages wait in it
        attempted = 0

        async def serve(endpoint: _Endpoint) -> None:
            nonlocal attempted
            sent = await self._serve_endpoint(endpoint)  # not "+= await": tasks interleave
            attempted += sent

        async with trio.open_nursery() as nursery:
            for row in rows:
                nursery.start_soon(serve, _Endpoint(row["id"], row["url"], Webhook(row["secret"])))
        return attempted

    async def _serve_endpoint(self, endpoint: _Endpoint) -> int:
        """Send the endpoint's messages in order, until one fails; then give its lease back."""
        release = "UPDATE webhook_endpoints SET claimed_until = NULL WHERE id = $1"
        try:
            attempted = await self._send_in_order(endpoint)
        except Unavailable:
            return 0  # the lease expires; the messages wait in the database
        except trio.Cancelled:
            # The daemon is stopping: another may take the endpoint at once, not after
            # the lease. A message cut off mid-send goes again, with its id.
            with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_SECONDS):
                await self.record(release, endpoint.id)
            raise
        await self.record(release, endpoint.id)
        return attempted

    async def _send_in_order(self, endpoint: _Endpoint) -> int:
        rows = await self._db.fetch(
            "SELECT id, body, attempts, created_at, next_attempt_at FROM webhook_deliveries"
            " WHERE endpoint_id = $1 AND delivered_at IS NULL AND given_up_at IS NULL"
            " ORDER BY seq LIMIT $2",
            endpoint.id, BATCH_MESSAGES,
        )
        attempted = 0
        delivered: list[tuple[uuid.UUID, int]] = []
        recorded_at = trio.current_time()
        target: targets.Target | targets.TargetRefused | None = None
        for row in rows:
            if row["next_attempt_at"] > self._now():
                break
            if target is None:  # checked once per round: a name may resolve elsewhere now
                target = await self._check(endpoint)
            else:
                await self.step_aside()
            attempted += 1
            result = await self.attempt(endpoint, target, row["id"], row["body"])
            self._outcomes[result.outcome] += 1
            if result.outcome == "delivered":
                assert result.status is not None
                delivered.append((row["id"], result.status))
                self._count_lag((self._now() - row["created_at"]).total_seconds())
                if (len(delivered) >= RECORD_EVERY_MESSAGES
                        or trio.current_time() - recorded_at > RECORD_EVERY_SECONDS):
                    await self._record_delivered(endpoint, delivered)
                    delivered, recorded_at = [], trio.current_time()
                continue
            await self._record_delivered(endpoint, delivered)
            delivered = []
            if result.outcome == "gone":
                await self._disable(endpoint, row["id"], result)
                break
            if not await self._record_failure(endpoint, row, result):
                break  # retried later: the endpoint's next messages wait for it
        await self._record_delivered(endpoint, delivered)
        return attempted

    async def _check(self, endpoint: _Endpoint) -> targets.Target | targets.TargetRefused:
        try:
            return await targets.check(endpoint.url, allow_private=self._allow_private)
        except targets.TargetRefused as exc:
            return exc

    async def attempt(
        self, endpoint: _Endpoint, target: targets.Target | targets.TargetRefused,
        message_id: uuid.UUID, body: str,
    ) -> Attempt:
        """Send one message once to ``target`` (the endpoint's URL as checked); never raises
        for what the receiver or the network does."""
        assert self._client is not None, "sending() opens the client"
        if isinstance(target, targets.TargetRefused):
            return Attempt("failed", error=f"target refused: {target}")
        content = body.encode()
        headers = sign(endpoint.signer, str(message_id), self._now(), content)
        url = httpx.URL(endpoint.url)
        headers["Host"] = url.netloc.decode("ascii")
        headers["Content-Type"] = "application/json"
        failure = "no address of the host could be reached"
        with trio.move_on_after(TIMEOUT_SECONDS):
            for address in target.addresses:
                try:
                    status = await self._post(url, address, target.host, headers, content)
                except httpx.ConnectError as exc:
                    failure = f"could not connect: {_words(exc)}"
                    continue  # the host's next address
                except httpx.HTTPError as exc:
                    return Attempt("failed", error=_words(exc))
                if 200 <= status < 300:
                    return Attempt("delivered", status)
                if status == GONE:
                    return Attempt("gone", status, "410 Gone: the receiver asked for no more")
                why = "a redirect, not followed" if 300 <= status < 400 else "not a 2xx"
                return Attempt("failed", status, f"HTTP {status}: {why}")
            return Attempt("failed", error=failure)
        return Attempt("failed", error=f"no answer within {TIMEOUT_SECONDS:g} s")

    async def _post(
        self, url: httpx.URL, address: targets.IPAddress, host: str, headers: dict[str, str],
        content: bytes,
    ) -> int:
        """POST to ``address`` itself (the one checked), as ``url``: Host and TLS name kept."""
        assert self._client is not None
        request = self._client.build_request(
            "POST", url.copy_with(host=str(address)), headers=headers, content=content,
            extensions={"sni_hostname": host},  # the certificate is checked against the name
        )
        response = await self._client.send(request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= RESPONSE_READ_BYTES:
                    break
        finally:
            await response.aclose()
        return response.status_code

    async def _record_delivered(
        self, endpoint: _Endpoint, delivered: list[tuple[uuid.UUID, int]]
    ) -> bool:
        if not delivered:
            return True
        now = self._now()
        return await self.record(
            "WITH done AS (UPDATE webhook_deliveries d SET delivered_at = $3,"
            "  attempts = d.attempts + 1, last_status = s.status, last_error = NULL"
            "  FROM unnest($1::uuid[], $2::int[]) AS s(id, status) WHERE d.id = s.id)"
            " UPDATE webhook_endpoints SET claimed_until = $3 + make_interval(secs => $5)"
            " WHERE id = $4",
            [i for i, _ in delivered], [s for _, s in delivered], now, endpoint.id,
            LEASE_SECONDS,
        )

    async def _record_failure(self, endpoint: _Endpoint, row: Any, result: Attempt) -> bool:
        """Schedule the next attempt, or give up; True when the endpoint may go on."""
        attempts = row["attempts"] + 1
        now = self._now()
        delay = backoff_seconds(attempts, self._backoff_base_seconds, BACKOFF_MAX_SECONDS)
        next_at = now + timedelta(seconds=delay)
        give_up: bool = next_at > row["created_at"] + self._retry
        log.warning(
            "webhook %s to endpoint %s failed (attempt %d)%s: %s", row["id"], endpoint.id,
            attempts, ", giving up" if give_up else f", retrying in {delay:.1f}s", result.error,
        )
        if give_up:
            self._outcomes["gave_up"] += 1
        await self.record(
            "UPDATE webhook_deliveries SET attempts = $2, last_status = $3, last_error = $4,"
            " next_attempt_at = $5, given_up_at = CASE WHEN $6::boolean THEN $7::timestamptz END"
            " WHERE id = $1",
            row["id"], attempts, result.status, (result.error or "")[:ERROR_MAX_CHARS],
            next_at, give_up, now,
        )
        return give_up

    async def _disable(self, endpoint: _Endpoint, message_id: uuid.UUID, result: Attempt) -> None:
        log.warning("webhook endpoint %s answered 410 Gone: disabled", endpoint.id)
        await self.record(
            "WITH tried AS (UPDATE webhook_deliveries SET attempts = attempts + 1,"
            "  last_status = $3, last_error = $4 WHERE id = $2)"
            " UPDATE webhook_endpoints SET enabled = false, claimed_until = NULL,"
            " disabled_reason = $4, updated_at = now() WHERE id = $1",
            endpoint.id, message_id, result.status, result.error,
        )

    def _count_lag(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self._lag_total += seconds
        for bound in LAG_SECONDS_BOUNDS:
            if seconds <= bound:
                self._lag_counts[bound] += 1
                break

    def statistics(self) -> DelivererStatistics:
        return DelivererStatistics(dict(self._outcomes), dict(self._lag_counts), self._lag_total)

    async def status(self) -> WebhookStatus:
        row = await self._db.fetchrow(
            "SELECT count(d.id) AS pending,"
            " count(DISTINCT d.endpoint_id) FILTER (WHERE d.last_error IS NOT NULL) AS failing,"
            " extract(epoch FROM now() - min(d.created_at)) AS oldest,"
            " (SELECT count(*) FROM webhook_endpoints WHERE NOT enabled) AS disabled"
            " FROM webhook_endpoints e JOIN webhook_deliveries d ON d.endpoint_id = e.id"
            " AND d.delivered_at IS NULL AND d.given_up_at IS NULL WHERE e.enabled"
        )
        assert row is not None
        oldest = row["oldest"]
        return WebhookStatus(
            row["pending"], row["failing"], row["disabled"],
            float(oldest) if oldest is not None else None,
        )


def sign(signer: Webhook, message_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt to send ``body``."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": signer.sign(message_id, at, body),
    }


def _words(exc: Exception) -> str:
    """An httpx error in words, without the URL (it may hold a token)."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:ERROR_MAX_CHARS]
