"""Idempotency keys in PostgreSQL: claim a key, store its response, release it, sweep.

This module is the SQL (table ``idempotency_keys``, ``sql/002_idempotency.sql``);
the rules — what is stored, the lease, the expiry — are in
``eventd.http.idempotency``. Every time is the database's ``now()``, so daemons
with skewed clocks sharing one database agree on leases and expiry.
"""

from __future__ import annotations

import dataclasses
import uuid

import orjson

from eventd.storage.database import Database


@dataclasses.dataclass(frozen=True)
class StoredResponse:
    """The answer given to the request that first used a key."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass(frozen=True)
class Claimed:
    """This request holds the key now; ``owner`` proves it when storing or releasing."""

    owner: uuid.UUID


@dataclasses.dataclass(frozen=True)
class Pending:
    """Another request holds the key and has not answered yet."""


@dataclasses.dataclass(frozen=True)
class Reused:
    """The key was used for a different request (another body, route or method)."""


ClaimResult = Claimed | Pending | Reused | StoredResponse

# Insert a pending claim; or replace the row when it has expired (the key is
# new again), or when it is a claim of this same request abandoned past its
# lease (its owner died). ON CONFLICT locks the row and re-checks the WHERE on
# its newest version, so of two requests racing for a key exactly one wins.
_CLAIM = """
INSERT INTO idempotency_keys AS k (key, request_hash, owner)
VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, owner = EXCLUDED.owner, claimed_at = now(),
    created_at = now(), status = NULL, headers = NULL, body = NULL
WHERE k.created_at <= now() - make_interval(secs => $4)
   OR (k.status IS NULL AND k.request_hash = EXCLUDED.request_hash
       AND k.claimed_at <= now() - make_interval(secs => $5))
RETURNING k.owner
"""

_LOOK = "SELECT request_hash, status, headers, body FROM idempotency_keys WHERE key = $1"

_STORE = """
UPDATE idempotency_keys SET status = $3, headers = $4::jsonb, body = $5
WHERE key = $1 AND owner = $2 AND status IS NULL
RETURNING true
"""

_RELEASE = "DELETE FROM idempotency_keys WHERE key = $1 AND owner = $2 AND status IS NULL"

_SWEEP = """
WITH doomed AS (
    SELECT key FROM idempotency_keys
    WHERE created_at <= now() - make_interval(secs => $1)
    ORDER BY created_at LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM idempotency_keys k USING doomed
    WHERE k.key = doomed.key AND k.created_at <= now() - make_interval(secs => $1)
    RETURNING 1
)
SELECT count(*) FROM gone
"""


async def claim(
    db: Database, key: str, request_hash: bytes, *, ttl_seconds: float, lease_seconds: float
) -> ClaimResult:
    """Claim ``key`` for the request hashed ``request_hash``, or say why not.

    The claim is committed before this returns (each statement is its own
    transaction), so every other request, in any daemon, sees it.
    """
    owner = uuid.uuid4()
    while True:
        won = await db.fetchval(_CLAIM, key, request_hash, owner, ttl_seconds, lease_seconds)
        if won is not None:
            return Claimed(owner)
        row = await db.fetchrow(_LOOK, key)
        if row is None:
            continue  # released between the two statements: the key is free again
        if bytes(row["request_hash"]) != request_hash:
            return Reused()
        if row["status"] is None:
            return Pending()
        return StoredResponse(row["status"], orjson.loads(row["headers"]), bytes(row["body"]))


async def store(db: Database, key: str, owner: uuid.UUID, response: StoredResponse) -> bool:
    """Keep ``response`` as the key's answer; False if the claim is no longer ours."""
    done = await db.fetchval(
        _STORE,
        key,
        owner,
        response.status,
        orjson.dumps(response.headers).decode(),
        response.body,
    )
    return done is not None


async def release(db: Database, key: str, owner: uuid.UUID) -> None:
    """Give up a pending claim, so that a retry executes."""
    await db.fetchval(_RELEASE, key, owner)


async def sweep_expired(db: Database, *, ttl_seconds: float, max_rows: int) -> int:
    """Delete up to ``max_rows`` expired keys, oldest first; returns how many."""
    deleted: int = await db.fetchval(_SWEEP, ttl_seconds, max_rows)
    return deleted
