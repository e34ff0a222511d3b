"""Mailer: drains the email outbox through a transport, never dropping a message.

An :class:`~eventd.storage.outbox.OutboxDrain`: rows are claimed with a lease
(``FOR UPDATE SKIP LOCKED``, so daemons sharing a database never take the
same row), sent, then marked sent. A failure puts the row back with
exponential backoff and jitter. A daemon that dies between sending and
marking leaves the lease to expire and the message is sent once more — with
the same Message-ID.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import orjson

from eventd.email.messages import OutboxMessage, manage_url
from eventd.email.transports import Transport
from eventd.errors import Unavailable
from eventd.storage.database import Database
from eventd.storage.outbox import OutboxDrain, backoff_seconds

log = logging.getLogger(__name__)

CLAIM_BATCH = 50
# Longer than any one send may take; a crashed daemon's claims wait this long.
LEASE_SECONDS = 15.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0


@dataclasses.dataclass(frozen=True)
class OutboxStatus:
    transport: str
    pending: int
    failing: int  # pending messages whose last attempt failed
    oldest_pending_seconds: float | None


class Mailer(OutboxDrain):
    what = "email"

    def __init__(
        self,
        db: Database,
        transport: Transport,
        sender: str,
        *,
        backoff_base_seconds: float = BACKOFF_BASE_SECONDS,
        public_url: str = "http://127.0.0.1:3000",
    ) -> None:
        super().__init__(db)
        self._transport = transport
        self._sender = sender
        self._public_url = public_url
        self._backoff_base_seconds = backoff_base_seconds
        self.sent = 0
        self.failed_attempts = 0

    async def send_due(self) -> int:
        """Send what is due now; returns how many messages were attempted."""
        try:
            rows = await self._db.fetch(
                "UPDATE email_outbox SET claimed_until = now() + make_interval(secs => $1),"
                " attempts = attempts + 1"
                " WHERE id IN (SELECT id FROM email_outbox WHERE sent_at IS NULL"
                "  AND next_attempt_at <= now()"
                "  AND (claimed_until IS NULL OR claimed_until < now())"
                "  ORDER BY next_attempt_at, created_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
                " RETURNING id, kind, recipient, payload, attempts",
                LEASE_SECONDS,
                CLAIM_BATCH,
            )
        except Unavailable:
            return 0  # the database is away; the messages wait in it
        sent = []
        for n, row in enumerate(rows):
            if n:
                await self.step_aside()
            if await self._send_one(row):
                sent.append(row["id"])
        if sent:
            # A sent message's manage token leaves the table: it lives on only in
            # the recipient's mailbox (the registration keeps its hash).
            await self.record(
                "UPDATE email_outbox SET sent_at = now(), claimed_until = NULL, last_error = NULL,"
                " payload = payload #- '{registration,token}'"
                " WHERE id = ANY($1::uuid[])",
                sent,
            )
        return len(rows)

    async def _send_one(self, row: Any) -> bool:
        """Hand one message to the transport; False (and a retry scheduled) if it failed."""
        # asyncpg hands jsonb over as its JSON text.
        payload = orjson.loads(row["payload"])
        message = OutboxMessage(row["id"], row["kind"], row["recipient"], payload,
                                manage_url(self._public_url, payload))
        try:
            await self._transport.send(message, self._sender)
        except Exception as exc:  # a refusal, or a bug composing: keep it, try later
            self.failed_attempts += 1
            delay = backoff_seconds(
                row["attempts"], self._backoff_base_seconds, BACKOFF_MAX_SECONDS
            )
            log.warning("email %s to %s failed (attempt %d), retrying in %.1fs: %s",
                        message.id, message.recipient, row["attempts"], delay, exc)
            await self.record(
                "UPDATE email_outbox SET next_attempt_at = now() + make_interval(secs => $2),"
                " claimed_until = NULL, last_error = $3 WHERE id = $1",
                message.id, delay, str(exc)[:500],
            )
            return False
        self.sent += 1
        return True

    async def status(self) -> OutboxStatus:
        row = await self._db.fetchrow(
            "SELECT count(*) AS pending, count(last_error) AS failing,"
            " extract(epoch FROM now() - min(created_at)) AS oldest"
            " FROM email_outbox WHERE sent_at IS NULL"
        )
        assert row is not None
        oldest = row["oldest"]
        return OutboxStatus(
            self._transport.name, row["pending"], row["failing"],
            float(oldest) if oldest is not None else None,
        )
