"""Admission tokens: made, hashed, and read from a request.

A queue ticket's token is 256 bits from :mod:`secrets`, URL-safe base64
without padding (43 characters). Only its SHA-256 is stored; a ticket read
by id compares hashes with :func:`hmac.compare_digest`, and a registration
finds its admission by the hash (``eventd_register_run``), so the token
itself is never in the database, a log line or a problem's detail.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid

from eventd.errors import AdmissionRequired
from eventd.http.context import current_request, header_values

TOKEN_BYTES = 32
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{43}$"
_TOKEN = re.compile(TOKEN_PATTERN[1:-1])
HEADER = b"admission-token"
# What a registration sends down for an Admission-Token that cannot be a
# token: no ticket's hash (they are 32 bytes), so a queued event refuses it
# (403 admission_required) and an event without a queue ignores it.
NO_TICKET = b""



def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def token_matches(token: str, stored_hash: bytes) -> bool:
    """Does ``token`` hash to ``stored_hash``? Constant-time in what is compared."""
    presented = token_hash(token) if is_token(token) else b"\0" * len(stored_hash)
    return hmac.compare_digest(presented, stored_hash) and is_token(token)


def request_admission_token_hash(event_id: uuid.UUID) -> bytes | None:
    """The SHA-256 of the current request's ``Admission-Token``; None when it sent none."""
    return admission_token_hash(header_values(current_request(), HEADER), event_id)


def registration_admission(event_id: uuid.UUID) -> bytes | None:
    """What a registration sends down as its admission: the token's SHA-256, None for none.

    A header that cannot be a token is not refused here: only the event knows
    whether it has a queue (then its ticket is not found: ``admission_required``)
    or ignores the header.
    """
    try:
        return request_admission_token_hash(event_id)
    except AdmissionRequired:
        return NO_TICKET


def admission_token_hash(values: list[str], event_id: uuid.UUID) -> bytes | None:
    """The SHA-256 of the ``Admission-Token`` sent (``values``: each one sent); None for none.

    A header that cannot be a token (sent twice, the wrong length or
    alphabet) is refused here, ``403 admission_required``, without repeating it.
    """
    if not values:
        return None
    if len(values) != 1 or not is_token(values[0].strip()):
        raise AdmissionRequired(
            f"Event {event_id} admits through its queue: the Admission-Token sent is not"
            " a ticket's token."
        )
    return token_hash(values[0].strip())
