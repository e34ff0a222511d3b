"""Webhook endpoints and their deliveries: the records, their writes and their pages.

An endpoint's secret is made here when it is created and returned only then
(:class:`CreatedEndpoint`); :class:`Endpoint` never carries it, so no page,
read or log line can show it. Deliveries are written by the database, in the
transaction of the change they announce: a registration's by its SQL
functions, an event's by :func:`enqueue_event_change`, which the event
commands call.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from eventd.errors import NotFound
from eventd.model import Event, format_time
from eventd.storage.database import Connection, Database, Row
from eventd.storage.queries import Page
from eventd.storage.writer import WriteCommand

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # 256 bits of HMAC-SHA256 key


def make_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of random key bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


async def enqueue_event_change(conn: Connection, kind: str, event: Event) -> None:
    """Queue ``event.<kind>`` (created, updated, deleted) with the event as the API shows it."""
    await conn.execute(
        "SELECT eventd_enqueue_webhook($1, $2::json)",
        f"event.{kind}",
        orjson.dumps(event.to_json()).decode(),
    )


# --- endpoints -------------------------------------------------------------------

_ENDPOINT_COLUMNS = (
    "id, url, types, description, enabled, disabled_reason, created_at, updated_at"
)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    url: str
    types: tuple[str, ...]
    description: str
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Endpoint:
        return cls(
            row["id"], row["url"], tuple(row["types"]), row["description"], row["enabled"],
            row["disabled_reason"], row["created_at"], row["updated_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "url": self.url,
            "types": list(self.types),
            "description": self.description,
            "enabled": self.enabled,
            "disabledReason": self.disabled_reason,
            "createdAt": format_time(self.created_at),
            "updatedAt": format_time(self.updated_at),
        }


@dataclasses.dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: Endpoint
    secret: str  # shown once, in the answer to the POST

    def to_json(self) -> dict[str, Any]:
        return {**self.endpoint.to_json(), "secret": self.secret}


class CreateEndpoint(WriteCommand[CreatedEndpoint]):
    def __init__(self, url: str, types: Sequence[str], description: str) -> None:
        super().__init__()
        self.url = url
        self.types = list(types)
        self.description = description

    async def run(self, conn: Connection) -> CreatedEndpoint:
        secret = make_secret()
        row = await conn.fetchrow(
            "INSERT INTO webhook_endpoints (id, url, types, description, secret)"
            f" VALUES ($1, $2, $3, $4, $5) RETURNING {_ENDPOINT_COLUMNS}",
            uuid.uuid4(), self.url, self.types, self.description, secret,
        )
        assert row is not None
        return CreatedEndpoint(Endpoint.from_row(row), secret)


class UpdateEndpoint(WriteCommand[Endpoint]):
    """Change any of url, types, description, enabled; enabling clears the disabled reason."""

    _COLUMNS = {"url": "url", "types": "types", "description": "description",
                "enabled": "enabled"}

    def __init__(self, endpoint_id: uuid.UUID, changes: dict[str, Any]) -> None:
        super().__init__()
        self.endpoint_id = endpoint_id
        self.changes = changes

    async def run(self, conn: Connection) -> Endpoint:
        names = [name for name in self._COLUMNS if name in self.changes]
        values = [self.changes[name] for name in names]
        sets = [f"{self._COLUMNS[name]} = ${i}" for i, name in enumerate(names, 2)]
        if self.changes.get("enabled") is True:
            sets.append("disabled_reason = NULL")
        row = await conn.fetchrow(
            f"UPDATE webhook_endpoints SET {', '.join(sets)}, updated_at = now()"
            f" WHERE id = $1 RETURNING {_ENDPOINT_COLUMNS}",
            self.endpoint_id, *values,
        )
        if row is None:
            raise NotFound(f"Webhook {self.endpoint_id} does not exist.")
        return Endpoint.from_row(row)


class DeleteEndpoint(WriteCommand[None]):
    """Remove an endpoint; its deliveries, sent or not, go with it."""

    def __init__(self, endpoint_id: uuid.UUID) -> None:
        super().__init__()
        self.endpoint_id = endpoint_id

    async def run(self, conn: Connection) -> None:
        found = await conn.fetchval(
            "DELETE FROM webhook_endpoints WHERE id = $1 RETURNING id", self.endpoint_id
        )
        if found is None:
            raise NotFound(f"Webhook {self.endpoint_id} does not exist.")


async def get_endpoint(db: Database, endpoint_id: uuid.UUID) -> Endpoint | None:
    row = await db.fetchrow(
        f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1", endpoint_id
    )
    return Endpoint.from_row(row) if row else None


async def list_endpoints(db: Database, page: int, limit: int) -> Page[Endpoint]:
    async with db.connection() as conn:
        total = await conn.fetchval("SELECT count(*) FROM webhook_endpoints")
        rows = await conn.fetch(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"
            " ORDER BY created_at, id LIMIT $1 OFFSET $2",
            limit, (page - 1) * limit,
        )
    return Page([Endpoint.from_row(r) for r in rows], total, page, limit)


# --- deliveries ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Delivery:
    id: uuid.UUID  # the message's webhook-id
    type: str
    created_at: datetime
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None
    given_up_at: datetime | None

    @property
    def status(self) -> str:
        if self.delivered_at is not None:
            return "delivered"
        return "failed" if self.given_up_at is not None else "pending"

    def to_json(self) -> dict[str, Any]:
        pending = self.status == "pending"
        return {
            "messageId": str(self.id),
            "type": self.type,
            "status": self.status,
            "createdAt": format_time(self.created_at),
            "attempts": self.attempts,
            "lastStatusCode": self.last_status,
            "lastError": self.last_error,
            "nextAttemptAt": format_time(self.next_attempt_at) if pending else None,
            "deliveredAt": _time_or_none(self.delivered_at),
            "givenUpAt": _time_or_none(self.given_up_at),
        }


def _time_or_none(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None


async def list_deliveries(
    db: Database, endpoint_id: uuid.UUID, page: int, limit: int
) -> Page[Delivery] | None:
    """An endpoint's deliveries, newest first; None if there is no such endpoint."""
    async with db.connection() as conn:
        if await conn.fetchval(
            "SELECT 1 FROM webhook_endpoints WHERE id = $1", endpoint_id
        ) is None:
            return None
        total = await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", endpoint_id
        )
        rows = await conn.fetch(
            "SELECT id, type, created_at, attempts, last_status, last_error, next_attempt_at,"
            " delivered_at, given_up_at FROM webhook_deliveries WHERE endpoint_id = $1"
            " ORDER BY seq DESC LIMIT $2 OFFSET $3",
            endpoint_id, limit, (page - 1) * limit,
        )
    return Page([Delivery(**dict(r)) for r in rows], total, page, limit)
