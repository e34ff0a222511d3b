"""``Idempotency-Key``: a retried POST does its work once and gets the first answer again.

Every POST handler is wrapped in :func:`idempotent`. Without the header nothing
changes. With it:

1. **The key is checked**: sent once, 1–255 characters, printable ASCII
   (0x20–0x7E; HTTP strips white space around a header value, so a key never
   starts or ends with a space). Otherwise ``400 validation_failed`` naming
   the header.
2. **The request is fingerprinted**: sha256 of method, path and body. A body
   that parses as JSON is hashed in canonical form (keys sorted, no
   insignificant white space), so a client that re-serializes the same object
   sends the same request.
3. **The key is claimed** before any work: a pending row, committed, in
   PostgreSQL (``eventd.storage.idempotency``). The same key with another
   fingerprint — another body, route or method — is ``409
   idempotency_key_reused``. The same request arriving while the key is
   pending waits (polling with backoff, within its own request deadline) and
   then replays the answer; if its deadline passes first it gets ``503`` and
   may retry. Of any number of concurrent requests with one key, one executes.
4. **The answer is stored, or the claim released**:

   - Stored and replayed (with ``Idempotent-Replayed: true``, the original
     status, body, ``Content-Type`` and ``Location``): 2xx, and the refusals
     that answer this request given the state it met — ``404 not_found`` and
     the ``409`` conflicts (``event_full``, ``already_registered``,
     ``email_taken``, ``event_overlap``, ``event_started``). The answer is the
     answer, as with Stripe: to try again after the state changed, use a new
     key.
   - Not stored, claim released: ``400``, ``413``, ``415`` (the request
     itself is malformed; the same bytes get the same answer anyway, and
     garbage should hold no key), and ``429`` and every ``5xx`` — including a
     passed deadline — since the work did not happen, or may not have, and a
     retry must be free to execute.

5. **Keys expire** :data:`TTL_SECONDS` (24 h) after their answer was first
   given: an expired key is new again, its row replaced on claim. Expired rows
   are also swept in batches, at most every :data:`SWEEP_INTERVAL_SECONDS` per
   daemon, so the table holds about a day of keys, not all of history.

The honest window. A request can die after its work committed and before its
answer was stored: the daemon killed, the database lost between COMMIT and the
store, the deadline passing while the writer commits. Its claim is then
released (deadline) or left pending (crash); a pending claim older than the
lease — :data:`LEASE_REQUEST_TIMEOUTS` × ``server.request_timeout_seconds``
plus :data:`SETTLE_TIMEOUT_SECONDS` — is taken over by the next retry, so a
dead owner never blocks a key for long. The retry executes again, and that is
safe because the domain refuses duplicates: it gets ``409 already_registered``,
``email_taken`` or ``event_overlap`` (with ``conflictingEventId``) instead of a
replayed ``201``. Nothing is done twice; only the answer differs. An owner
alive past its lease cannot happen while every request ends by its deadline
(and its shielded store or release by :data:`SETTLE_TIMEOUT_SECONDS` more); if
it did, its store would be refused by the owner check and logged.

Keys are global, not per client: send a random one (a UUID) per operation.
Admin auth runs before the key is looked at (an unauthorized request claims
nothing), and so does the rate limit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import ParamSpec

import orjson
import trio
from quart import Response, current_app

from eventd.errors import (
    EventdError,
    FieldError,
    IdempotencyKeyReused,
    Unavailable,
    ValidationFailed,
    echo,
)
from eventd.http import problems
from eventd.http.connection import Request
from eventd.http.context import current_request, header_values, services
from eventd.storage import idempotency as store
from eventd.storage.database import Database, QueryFailed

log = logging.getLogger(__name__)

P = ParamSpec("P")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 255
TTL_SECONDS = 24 * 3600.0
LEASE_REQUEST_TIMEOUTS = 3
SWEEP_INTERVAL_SECONDS = 60.0
SWEEP_BATCH_ROWS = 10_000
SETTLE_TIMEOUT_SECONDS = 2.0  # to store an answer or release a claim
POLL_FIRST_SECONDS = 0.01
POLL_MAX_SECONDS = 0.25

# The response headers a replay repeats; the rest (Date, Content-Length) are per answer.
_KEPT_HEADERS = ("Content-Type", "Location")
# Client errors that are the outcome of the work, not of the request's shape.
_STORED_REFUSALS = frozenset({404, 409})


def idempotent(
    handler: Callable[P, Awaitable[Response]],
) -> Callable[P, Awaitable[Response]]:
    """Make a POST handler honour ``Idempotency-Key`` (see the module docstring)."""

    @functools.wraps(handler)
    async def once(*args: P.args, **kwargs: P.kwargs) -> Response:
        current = current_request()
        key = _read_key(current)
        if key is None:
            return await handler(*args, **kwargs)
        fingerprint = request_fingerprint(current.method, current.path, current.complete_body)
        s = services()
        await _sweep_if_due(s.db)
        # Longer than any owner can live: its deadline, then its shielded settling.
        timeout_seconds = s.config.server.request_timeout_seconds
        lease_seconds = LEASE_REQUEST_TIMEOUTS * timeout_seconds + SETTLE_TIMEOUT_SECONDS
        claim = await _claim(s.db, key, fingerprint, lease_seconds)
        if isinstance(claim, store.StoredResponse):
            return _replay(claim)
        return await run_claimed(
            s.db, key, claim.owner, functools.partial(handler, *args, **kwargs)
        )

    return once


def request_fingerprint(method: str, path: str, body: bytes) -> bytes:
    """sha256 of what makes two requests the same request."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except (ValueError, TypeError):
        canonical = body  # not JSON (it will be refused); its bytes are what was sent
    return hashlib.sha256(b"\0".join((method.upper().encode(), path.encode(), canonical))).digest()


def _read_key(current: Request) -> str | None:
    sent = header_values(current, b"idempotency-key")
    if not sent:
        return None
    problem = None
    if len(sent) > 1:
        problem = "must be sent once"
    elif not 1 <= len(sent[0]) <= MAX_KEY_CHARS:
        problem = f"must be 1–{MAX_KEY_CHARS} characters"
    elif not all(" " <= char <= "~" for char in sent[0]):
        problem = "must be printable ASCII characters"
    if problem:
        raise ValidationFailed([FieldError(HEADER, problem)])
    return sent[0]


async def _claim(
    db: Database, key: str, fingerprint: bytes, lease_seconds: float
) -> store.Claimed | store.StoredResponse:
    """Hold the key, or the answer already given; waits while another request holds it."""
    pause = POLL_FIRST_SECONDS
    while True:
        found = await store.claim(
            db, key, fingerprint, ttl_seconds=TTL_SECONDS, lease_seconds=lease_seconds
        )
        if isinstance(found, store.Claimed | store.StoredResponse):
            return found
        if isinstance(found, store.Reused):
            raise IdempotencyKeyReused(
                f"The {HEADER} {echo(key)!r} was already used with a different request;"
                " use a new key for a new request."
            )
        # Pending: the request's deadline (EventdApp.dispatch_request) bounds the wait.
        await trio.sleep(pause)
        pause = min(pause * 2, POLL_MAX_SECONDS)


async def run_claimed(
    db: Database, key: str, owner: uuid.UUID, work: Callable[[], Awaitable[Response]]
) -> Response:
    """Run ``work`` while holding a claimed key; then store its answer or let the key go.

    Which answers are stored is the rule of step 4 in the module docstring.
    """
    try:
        response = await work()
    except EventdError as error:
        refusal = problems.from_error(error)
        if not _is_kept(refusal.status_code):
            await _release(db, key, owner)
            raise  # answered by the app's error handler, as without a key
        response = refusal
    except BaseException:
        await _release(db, key, owner)
        raise
    status = response.status_code
    if not _is_kept(status):
        await _release(db, key, owner)
        return response
    body = await response.get_data(as_text=False)
    assert isinstance(body, bytes)
    headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
    await _store(db, key, owner, store.StoredResponse(status, headers, body))
    return response


def _is_kept(status: int) -> bool:
    return 200 <= status < 300 or status in _STORED_REFUSALS


async def _store(db: Database, key: str, owner: uuid.UUID, answer: store.StoredResponse) -> None:
    # The work is done, so its answer is worth keeping even as the deadline
    # passes: shielded, briefly. Whatever happens, the client gets the true
    # answer; if it cannot be kept, the claim stays pending until its lease
    # ends and a retry re-executes (see "the honest window").
    with trio.CancelScope(shield=True), trio.move_on_after(SETTLE_TIMEOUT_SECONDS):
        try:
            if not await store.store(db, key, owner, answer):
                log.warning("an idempotency key was taken over while its request ran")
        except (Unavailable, QueryFailed):
            log.warning("could not store the answer for an idempotency key", exc_info=True)


async def _release(db: Database, key: str, owner: uuid.UUID) -> None:
    # Shielded: this runs when the request is being cancelled, too. If it
    # fails, the lease frees the key later.
    with trio.CancelScope(shield=True), trio.move_on_after(SETTLE_TIMEOUT_SECONDS):
        try:
            await store.release(db, key, owner)
        except (Unavailable, QueryFailed):
            log.warning("could not release an idempotency key", exc_info=True)


def _replay(stored: store.StoredResponse) -> Response:
    headers = {**stored.headers, REPLAYED_HEADER: "true"}
    content_type = headers.pop("Content-Type", None)
    return Response(stored.body, status=stored.status, headers=headers, content_type=content_type)


@dataclasses.dataclass
class _SweepSchedule:
    next_at: float = -math.inf


async def _sweep_if_due(db: Database) -> None:
    schedule: _SweepSchedule = current_app.extensions.setdefault(
        "eventd.idempotency_sweep", _SweepSchedule()
    )
    now = trio.current_time()
    if now < schedule.next_at:
        return
    schedule.next_at = now + SWEEP_INTERVAL_SECONDS  # before awaiting: one sweep at a time
    with contextlib.suppress(Unavailable):  # then the claim will say so
        deleted = await store.sweep_expired(db, ttl_seconds=TTL_SECONDS, max_rows=SWEEP_BATCH_ROWS)
        if deleted:
            log.info("swept %d expired idempotency key(s)", deleted)
