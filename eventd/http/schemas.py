"""Request schemas: what a body or query must look like, and the words for when it does not.

Bodies are validated strictly (no type coercion, unknown fields rejected) by
pydantic; every failure becomes a :class:`~eventd.errors.ValidationFailed`
with one ``{field, message}`` per problem. The same models are the request
bodies of the OpenAPI document (``eventd.http.openapi``): what the validators
check beyond pydantic's own constraints is noted in their JSON Schema.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal, TypeVar

import email_validator
import pydantic
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from eventd.errors import FieldError, MalformedJson, ValidationFailed, echo
from eventd.model import utc_now
from eventd.timezones import MAX_NAME_CHARS, is_timezone

M = TypeVar("M", bound=BaseModel)


_NOT_A_TIMESTAMP = "must be an RFC 3339 timestamp"

# How an RFC 3339 timestamp starts; pydantic checks the rest.
_DATE_TIME_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")
_ANY_DATETIME: pydantic.TypeAdapter[datetime] = pydantic.TypeAdapter(datetime)

# Latest accepted start: a week's duration after it still fits a datetime.
LATEST_DATE = datetime(9999, 12, 1, tzinfo=UTC)

# Text PostgreSQL can store: no NUL characters (``_storable``), as JSON Schema says it.
NO_NUL = r"^[^\u0000]*$"
_STORABLE: dict[str, Any] = {"pattern": NO_NUL}
_INTEGER_LITERAL = " A JSON integer (`60`, not `60.0`)."


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it here rather than fail there.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# Characters that show nothing: controls (Cc) and format characters (Cf: zero-width
# spaces and joiners, bidi marks and overrides, the BOM). Text made only of these
# and white space reads as blank, so it is refused like blank text.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf"})
NOT_BLANK = (
    "Not blank: at least one character that is not white space, a control character"
    " or a format character (such as U+200B zero width space or U+202E right-to-left"
    " override)."
)


def _shows_nothing(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in _INVISIBLE_CATEGORIES


def _not_blank(value: str) -> str:
    if all(_shows_nothing(char) for char in value):
        raise ValueError("must not be blank")
    return value


_SPECIAL_USE_DOMAINS = ", ".join(f"`{name}`" for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)
EMAIL_RULE = (
    "An address as the `email-validator` library checks it, without a DNS lookup:"
    " `local@domain`, no display name, no quoted local part, no IP address; the"
    " domain has at least one dot, its last label ends in a letter, and it is not"
    f" a special-use name or under one ({_SPECIAL_USE_DOMAINS}). So `a@localhost`"
    " and `+x@host.test` are refused, `+x@host.example` is accepted. Non-ASCII"
    " addresses are accepted. Unique ignoring case; stored as given."
)


def _valid_email(value: str) -> str:
    # The rule EMAIL_RULE describes, spelled out rather than left to email_validator's
    # module-wide defaults: syntax only, an address mail on the internet can reach.
    try:
        email_validator.validate_email(
            value,
            check_deliverability=False,  # no DNS lookup
            globally_deliverable=True,  # a dotted domain ending in a letter, not special-use
            test_environment=False,  # so `.test` is special-use too
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            allow_empty_local=False,
        )
    except email_validator.EmailNotValidError:
        raise ValueError("must be a valid email address") from None
    return value  # stored as given


def _date_time_text(value: object) -> object:
    # pydantic reads a string of digits ("1700000000") as seconds, or
    # milliseconds, since 1970; the contract's timestamps are RFC 3339 text.
    # Parsed here (pydantic's parser, lax) because in strict mode the field
    # only takes a datetime once a validator has run before it.
    if isinstance(value, datetime):
        return value
    if not (isinstance(value, str) and _DATE_TIME_START.match(value)):
        raise ValueError(_NOT_A_TIMESTAMP)
    try:
        return _ANY_DATETIME.validate_python(value)
    except pydantic.ValidationError:
        raise ValueError(_NOT_A_TIMESTAMP) from None


def _in_future(value: datetime) -> datetime:
    if value <= utc_now():
        raise ValueError("must be in the future")
    if value >= LATEST_DATE:
        raise ValueError("must be before 9999-12-01")
    return value


def _known_timezone(value: str) -> str:
    if not is_timezone(value):
        raise ValueError("must be an IANA time zone name, such as Europe/Berlin or UTC")
    return value


Text = Annotated[
    str,
    Field(min_length=1, max_length=200, json_schema_extra=_STORABLE),
    AfterValidator(_storable),
    AfterValidator(_not_blank),
]
Name = Annotated[Text, Field(description=NOT_BLANK)]
Description = Annotated[
    str, Field(max_length=5000, json_schema_extra=_STORABLE), AfterValidator(_storable)
]
Location = Annotated[
    Text,
    Field(
        description=NOT_BLANK + " Compared for overlaps trimmed, with inner white space"
        " collapsed, ignoring case."
    ),
]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]
FutureDate = Annotated[
    Timestamp,
    AfterValidator(_in_future),
    Field(
        description="The start: in the future (before 9999-12-01), RFC 3339 with any UTC"
        " offset; answered in UTC."
    ),
]
Duration = Annotated[int, Field(ge=1, le=10080, description="The length." + _INTEGER_LITERAL)]
Capacity = Annotated[
    int, Field(ge=1, le=1_000_000, description="The capacity." + _INTEGER_LITERAL)
]
TimezoneName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        pattern=r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$",
        description="An IANA time zone (`Europe/Berlin`): how people read the event's"
        " times in emails, pages and calendars. `date` stays UTC in JSON.",
        examples=["Europe/Berlin"],
    ),
    AfterValidator(_known_timezone),
]
Email = Annotated[
    str,
    Field(
        max_length=254,
        description=EMAIL_RULE,
        json_schema_extra={"format": "email", **_STORABLE},
    ),
    AfterValidator(_storable),
    AfterValidator(_valid_email),
]


def _offer_window(value: float) -> float:
    if 0 < value < 0.05:
        raise ValueError("must be 0 (no offers) or between 0.05 and 10080")
    return value


HoldMinutes = Annotated[
    float,
    Field(
        ge=0.05,
        le=1440,
        description="How long a hold lasts, in minutes (fractions allowed: 0.05 = 3 s)."
        " Absent on create: `registrations.hold_minutes` (15).",
    ),
]
OfferMinutes = Annotated[
    float,
    Field(
        ge=0,
        le=10080,
        description="The claim window of a waitlist offer, in minutes: 0, or 0.05–10080."
        " 0 (the default): a freed seat is confirmed at once.",
    ),
    AfterValidator(_offer_window),
]
ConfirmationMode = Annotated[
    Literal["instant", "email"],
    Field(
        description='`"email"`: every registration starts `held` and only the link in its'
        ' email confirms it. Default `"instant"`.'
    ),
]


class Body(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, alias_generator=to_camel, frozen=True
    )


def _only_what_is_sent(schema: dict[str, Any]) -> None:
    """A partial update's JSON Schema: its fields are typed ``X | None`` only to tell which
    were sent; null is refused (``EventPatch.changes``), and so is an empty object."""
    for field in schema["properties"].values():
        del field["default"]
        (sent,) = [option for option in field.pop("anyOf") if option != {"type": "null"}]
        field.update(sent)
    schema["minProperties"] = 1


class EventCreate(Body):
    name: Name
    description: Description = ""
    date: FutureDate
    duration_minutes: Duration = 60
    location: Location
    max_attendees: Capacity
    timezone: TimezoneName | None = Field(
        None, description="Absent or null: `events.default_timezone` (`UTC` unless set)."
    )
    hold_minutes: HoldMinutes | None = None
    offer_minutes: OfferMinutes = 0.0
    confirmation: ConfirmationMode = "instant"


class EventPatch(Body):
    model_config = ConfigDict(json_schema_extra=_only_what_is_sent)

    name: Name | None = None
    description: Description | None = None
    date: FutureDate | None = None
    duration_minutes: Duration | None = None
    location: Location | None = None
    max_attendees: Capacity | None = None
    timezone: TimezoneName | None = None
    hold_minutes: HoldMinutes | None = None
    offer_minutes: OfferMinutes | None = None
    confirmation: ConfirmationMode | None = None

    def changes(self) -> dict[str, Any]:
        """The fields sent, by storage name; ``date`` is the event's start."""
        sent = {name: getattr(self, name) for name in self.model_fields_set}
        nulls = [to_camel(name) for name, value in sent.items() if value is None]
        if nulls:
            raise ValidationFailed([FieldError(f, "must not be null") for f in sorted(nulls)])
        if not sent:
            raise ValidationFailed([FieldError("", "send at least one field to change")])
        if "date" in sent:
            sent["starts_at"] = sent.pop("date")
        return sent


class AttendeeCreate(Body):
    name: Name
    email: Email


class InlineAttendee(Body):
    """Who registers, found by email (ignoring case) or made now."""

    name: Name
    email: Email


def _one_attendee(schema: dict[str, Any]) -> None:
    """``attendeeId`` or ``attendee``, exactly one, neither null: typed ``X | None`` only
    to tell which was sent."""
    for name in ("attendeeId", "attendee"):
        field = schema["properties"][name]
        field.pop("default", None)
        (sent,) = [option for option in field.pop("anyOf") if option != {"type": "null"}]
        field.update(sent)
    schema["oneOf"] = [{"required": ["attendeeId"]}, {"required": ["attendee"]}]


class RegistrationCreate(Body):
    model_config = ConfigDict(json_schema_extra=_one_attendee)

    event_id: uuid.UUID
    attendee_id: uuid.UUID | None = Field(
        None, description="An existing attendee; or send `attendee` instead (exactly one)."
    )
    attendee: InlineAttendee | None = Field(
        None,
        description="Instead of `attendeeId`: found by email, or made. When the email"
        " already belongs to an attendee, the registration starts `held` and its token"
        " goes only to that address.",
    )
    waitlist: bool = Field(
        False, description="Join the waitlist when the event is full (else 409)."
    )
    hold: bool = Field(
        False,
        description="Start `held` (confirm with `POST /registrations/{id}/confirm` before"
        " `expiresAt`), even when the event confirms at once.",
    )

    @pydantic.model_validator(mode="after")
    def _exactly_one_attendee(self) -> RegistrationCreate:
        # Our own error, not a ValueError: it names the field to fix, which
        # pydantic cannot for a check of the body as a whole.
        if self.attendee_id is None and self.attendee is None:
            raise ValidationFailed([FieldError("attendeeId", "is required (or send attendee)")])
        if self.attendee_id is not None and self.attendee is not None:
            raise ValidationFailed([FieldError(
                "attendee", "send either attendeeId or attendee, not both")])
        return self


# --- turning pydantic's errors into ours ----------------------------------------

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "int_type": "must be an integer",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "uuid_type": "must be a UUID",
    "uuid_parsing": "must be a UUID",
    "datetime_type": _NOT_A_TIMESTAMP,
    "datetime_parsing": _NOT_A_TIMESTAMP,
    "datetime_from_date_parsing": _NOT_A_TIMESTAMP,
    "timezone_aware": "must include a UTC offset (e.g. Z or +01:00)",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
}


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "greater_than_equal":
        return f"must be ≥ {ctx['ge']}"
    if kind == "less_than_equal":
        return f"must be ≤ {ctx['le']}"
    if kind == "string_too_short":
        return f"must be at least {ctx['min_length']} character(s)"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return echo(str(error["msg"]))  # pydantic's own words may quote the input


def _field_errors(exc: pydantic.ValidationError) -> list[FieldError]:
    # A field's name is the client's when it is an unknown one.
    return [
        FieldError(echo(".".join(str(part) for part in error["loc"])), _message(error))
        for error in exc.errors(include_url=False)
    ]


def parse_body(model: type[M], raw: bytes) -> M:
    """Validate a JSON body against ``model``."""
    try:
        return model.model_validate_json(raw, strict=True)
    except pydantic.ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise MalformedJson("The request body is not valid JSON.") from None
        raise ValidationFailed(_field_errors(exc)) from None


# --- query strings --------------------------------------------------------------


class Query:
    """Typed access to a query string; collects every problem before failing."""

    def __init__(self, args: Mapping[str, str], allowed: set[str]) -> None:
        self._args = args
        self.errors = [
            FieldError(echo(name), "is not a known query parameter")
            for name in args
            if name not in allowed
        ]

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        text = self._args.get(name)
        if text is None:
            return default
        if not _INTEGER.fullmatch(text):  # int() would also take "1_0", " 7", "٣"
            self.errors.append(FieldError(name, "must be an integer"))
            return default
        value = int(text)
        if not low <= value <= high:
            self.errors.append(FieldError(name, f"must be between {low} and {high}"))
        return value

    def text(self, name: str, max_length: int = 200) -> str | None:
        value = self._args.get(name)
        if value is not None and len(value) > max_length:
            self.errors.append(FieldError(name, f"must be at most {max_length} characters"))
        if value is not None and "\x00" in value:
            self.errors.append(FieldError(name, "must not contain NUL characters"))
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        value = self._args.get(name)
        if value is not None and value not in choices:
            self.errors.append(FieldError(name, f"must be one of {', '.join(choices)}"))
            return None
        return value

    def timestamp(self, name: str, *, end_of_day: bool = False) -> datetime | None:
        """An RFC 3339 moment, or a plain date (``2027-03-01``) taken as its first moment
        in UTC, or with ``end_of_day`` its last: an inclusive bound that keeps the day whole.
        """
        text = self._args.get(name)
        if text is None:
            return None
        if _PLAIN_DATE.fullmatch(text):
            try:
                day = date.fromisoformat(text)
            except ValueError:
                self.errors.append(FieldError(name, "must be a valid date"))
                return None
            return datetime.combine(day, time.max if end_of_day else time.min, UTC)
        # An unescaped "+01:00" arrives as " 01:00"; take it as meant.
        text = text.replace(" ", "+")
        try:
            return _TIMESTAMP.validate_python(text)
        except pydantic.ValidationError as exc:
            message = _message(exc.errors()[0])
            if message == _NOT_A_TIMESTAMP:
                message += " or a date (YYYY-MM-DD)"
            self.errors.append(FieldError(name, message))
            return None

    def page(self, default_limit: int = 20, max_limit: int = 100) -> tuple[int, int]:
        return (
            self.integer("page", 1, 1, 1_000_000),
            self.integer("limit", default_limit, 1, max_limit),
        )

    def check(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)


_TIMESTAMP: pydantic.TypeAdapter[datetime] = pydantic.TypeAdapter(Timestamp)
_PLAIN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INTEGER = re.compile(r"-?[0-9]{1,9}")
