"""Domain errors: what went wrong, in words a client can act on.

Every error carries a stable ``code``; ``eventd.http.problems`` maps each to
its HTTP status and problem+json body in one table. Lower layers translate
their own failures into these (the store turns a lost connection into
:class:`Unavailable`), so nothing above them sees asyncpg or asyncio.

    EventdError
    ├── MalformedJson               body is not JSON
    ├── ValidationFailed            body or query fails the schema
    ├── UnsupportedMediaType        body is not application/json
    ├── PayloadTooLarge             body over limits.max_body_bytes
    ├── Unauthorized                admin route without a valid token
    ├── Forbidden                   owner action without the registration's token (or admin)
    ├── NotFound                    no such resource
    ├── Conflict
    │   ├── EventFull
    │   ├── AlreadyRegistered
    │   ├── EmailTaken
    │   ├── EventOverlap            carries the conflicting event's id
    │   ├── CapacityBelowRegistrations
    │   ├── EventStarted
    │   ├── IdempotencyKeyReused
    │   ├── HoldExpired             confirm after the hold's or offer's expiresAt
    │   ├── NotHeld                 confirm of a waitlisted or cancelled registration
    │   ├── TicketNotValid          bad signature, or the registration is not confirmed
    │   ├── AlreadyCheckedIn        carries the first check-in's time
    │   ├── SalesNotOpen            before the event's salesStartAt
    │   └── AdmissionUsed           the admission made a registration already
    ├── AdmissionRequired           queued event, no valid Admission-Token (403)
    ├── AdmissionExpired            the admission's expiresAt has passed (410)
    ├── RateLimited                 carries Retry-After
    ├── Unavailable                 the database cannot be reached; carries Retry-After
    └── InternalError               our fault: answered 500, details only in the log

A ``detail`` that repeats what the client sent (an id from the path, a field
name, a header) repeats it through :func:`echo`, so an answer never grows
with the request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

# Longest piece of client input a problem detail repeats; ids and names fit.
ECHO_MAX_CHARS = 100
_ELLIPSIS = "…"


def echo(text: str) -> str:
    """``text`` as a problem detail may repeat it: cut to ECHO_MAX_CHARS with an ellipsis."""
    if len(text) <= ECHO_MAX_CHARS:
        return text
    return text[: ECHO_MAX_CHARS - len(_ELLIPSIS)] + _ELLIPSIS


class EventdError(Exception):
    code = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedJson(EventdError):
    code = "malformed_json"


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ValidationFailed(EventdError):
    code = "validation_failed"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        # A problem with the body as a whole has no field to name.
        summary = "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in errors[:5])
        super().__init__(detail or f"The request is not valid: {summary}.")
        self.errors = errors


class UnsupportedMediaType(EventdError):
    code = "unsupported_media_type"


class PayloadTooLarge(EventdError):
    code = "payload_too_large"


class Unauthorized(EventdError):
    code = "unauthorized"


class Forbidden(EventdError):
    code = "forbidden"


class NotFound(EventdError):
    code = "not_found"


class Conflict(EventdError):
    pass


class EventFull(Conflict):
    code = "event_full"


class AlreadyRegistered(Conflict):
    code = "already_registered"


class EmailTaken(Conflict):
    code = "email_taken"


class EventOverlap(Conflict):
    code = "event_overlap"

    def __init__(self, detail: str, conflicting_event_id: uuid.UUID) -> None:
        super().__init__(detail)
        self.conflicting_event_id = conflicting_event_id


class CapacityBelowRegistrations(Conflict):
    code = "capacity_below_registrations"


class EventStarted(Conflict):
    code = "event_started"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class HoldExpired(Conflict):
    code = "hold_expired"


class NotHeld(Conflict):
    code = "not_held"


class TicketNotValid(Conflict):
    code = "ticket_not_valid"


class AlreadyCheckedIn(Conflict):
    code = "already_checked_in"

    def __init__(self, detail: str, checked_in_at: datetime) -> None:
        super().__init__(detail)
        self.checked_in_at = checked_in_at


class SalesNotOpen(Conflict):
    code = "sales_not_open"


class AdmissionUsed(Conflict):
    code = "admission_used"


class AdmissionRequired(EventdError):
    code = "admission_required"


class AdmissionExpired(EventdError):
    code = "admission_expired"


def gate_refusal(answer: str, event_id: uuid.UUID) -> EventdError | None:
    """A registration gate's answer (``eventd_register_run``, or
    :func:`eventd.storage.queue.gate_answer` before it) as the error to send; None for ``"ok"``."""
    if answer == "ok":
        return None
    if answer == "sales_not_open":
        return SalesNotOpen(f"Sales for event {event_id} have not opened yet.")
    if answer == "admission_required":
        return AdmissionRequired(
            f"Event {event_id} admits through its queue: send the Admission-Token of an"
            " admitted ticket (POST /events/{id}/queue)."
        )
    if answer == "admission_used":
        return AdmissionUsed("This admission has made its registration already.")
    if answer == "admission_expired":
        return AdmissionExpired("This admission has expired; join the queue again.")
    raise ValueError(f"not a gate's answer: {answer!r}")


class RateLimited(EventdError):
    code = "rate_limited"

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(EventdError):
    code = "unavailable"

    def __init__(self, detail: str, retry_after_seconds: int = 2) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class InternalError(EventdError):
    code = "internal_error"
