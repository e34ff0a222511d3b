"""Exports: a whole list as one file, for spreadsheets and other systems.

- ``GET /events/{id}/registrations/export?format=csv|ndjson&status=…`` — the
  event's registrations with their attendees: ``id``, ``status``,
  ``attendeeName``, ``attendeeEmail``, ``createdAt``, ``updatedAt``,
  ``expiresAt``, ``checkedInAt`` (empty while registrations do not have
  them). By status, each status in arrival order.
- ``GET /attendees/export?format=csv|ndjson`` — every attendee: ``id``,
  ``name``, ``email``, ``createdAt``, by ``createdAt``.

Both are admin routes. ``format`` defaults to ``csv``; an unknown format or
status is ``400 validation_failed``, an unknown event ``404``.

**Streamed.** Rows come from a server-side cursor
(:meth:`eventd.storage.database.Database.cursor`) :data:`PAGE_ROWS` at a
time; each page is encoded and handed to the connection before the next is
read, and the connection takes it only as fast as the client reads. So a
daemon's memory does not grow with the rows, and the file has one snapshot
of them: rows that change while it is read are as they were when it began.
The cursor is opened before the answer starts, so a database that cannot be
reached is a ``503``; one lost midway cuts the file short (the chunked body
never ends), which a client sees as an error, never as a complete file.

**Formats.** ``csv`` is RFC 4180 (``text/csv``, CRLF line ends, a header
row, fields quoted when they must be) as Python's :mod:`csv` writes it. A
text field that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is prefixed with ``'``: a spreadsheet would otherwise take it for a
formula (OWASP's "CSV injection"), and an attendee chooses their own name.
``ndjson`` is one JSON object per line (``application/x-ndjson``), with the
same camelCase keys and the values as they are. Times are RFC 3339 UTC with
a ``Z``, as everywhere in the API; a time that is not there is an empty
field in CSV and ``null`` in NDJSON. Both answer with
``Content-Disposition: attachment`` and a file name.
"""

from __future__ import annotations

import csv
import io
import typing
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

import orjson
from quart import Blueprint, Response, request

from eventd.errors import NotFound
from eventd.http.context import admin_route, parse_id, services
from eventd.http.schemas import Query
from eventd.model import RegistrationStatus, format_time
from eventd.storage import queries
from eventd.storage.database import Cursor, Row

blueprint = Blueprint("exports", __name__)

# Rows read from the cursor, encoded and sent at a time: big enough that a
# round trip to the database is a small part of each, small enough that a
# page is a few hundred kilobytes at most.
PAGE_ROWS = 2000
FORMATS = ("csv", "ndjson")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8; header=present", "ndjson": "application/x-ndjson"}
STATUSES: tuple[str, ...] = typing.get_args(RegistrationStatus)
# What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

OpenRows = Callable[[], AbstractAsyncContextManager[Cursor]]


@blueprint.get("/events/<event_id>/registrations/export")
@admin_route
async def export_event_registrations(event_id: str) -> Response:
    q = Query(request.args, {"format", "status"})
    kind = q.choice("format", FORMATS) or "csv"
    status = q.choice("status", STATUSES)
    q.check()
    eid = parse_id(event_id, "Event")
    db = services().db
    if await queries.load_event(db, eid) is None:
        raise NotFound(f"Event {event_id} does not exist.")
    return await _export(
        lambda: queries.export_registrations(db, eid, status),
        queries.REGISTRATION_EXPORT_COLUMNS,
        kind,
        f"registrations-{eid}",
    )


@blueprint.get("/attendees/export")
@admin_route
async def export_attendees() -> Response:
    q = Query(request.args, {"format"})
    kind = q.choice("format", FORMATS) or "csv"
    q.check()
    db = services().db
    return await _export(
        lambda: queries.export_attendees(db), queries.ATTENDEE_EXPORT_COLUMNS, kind, "attendees"
    )


async def _export(
    open_rows: OpenRows, columns: Sequence[tuple[str, str]], kind: str, name: str
) -> Response:
    names = [column for column, _sql in columns]
    encode = _csv_page if kind == "csv" else _ndjson_page(names)
    head = _csv_line(names) if kind == "csv" else b""
    chunks = _chunks(open_rows, head, encode)
    body = await _Started.begin(chunks)  # the cursor is open: now the answer may start
    response = Response(body, content_type=CONTENT_TYPES[kind])
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    return response


async def _chunks(
    open_rows: OpenRows, head: bytes, encode: Callable[[Sequence[Row]], bytes]
) -> AsyncGenerator[bytes, None]:
    async with open_rows() as cursor:
        yield head
        while rows := await cursor.fetch(PAGE_ROWS):
            yield encode(rows)


class _Started:
    """The answer's body: its first chunk, read while the request was handled, then the rest.

    Reading the first chunk opens the cursor, so a database that cannot be
    reached answers 503 rather than a broken file. The body is closed by the
    connection when it is done with it, sent or not, and closing it closes
    the cursor, its transaction and its connection.
    """

    def __init__(self, first: bytes, rest: AsyncGenerator[bytes, None]) -> None:
        self._first: bytes | None = first
        self._rest = rest

    @classmethod
    async def begin(cls, chunks: AsyncGenerator[bytes, None]) -> _Started:
        try:
            first = await anext(chunks)
        except BaseException:
            await chunks.aclose()
            raise
        return cls(first, chunks)

    def __aiter__(self) -> _Started:
        return self

    async def __anext__(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await anext(self._rest)

    async def aclose(self) -> None:
        await self._rest.aclose()


# --- encoding ---------------------------------------------------------------------


def _neutralised(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _neutralised(value)
    if isinstance(value, datetime):
        return format_time(value)
    return str(value)  # ids


def _csv_page(rows: Sequence[Row]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")  # RFC 4180's line end
    writer.writerows([_cell(value) for value in row.values()] for row in rows)
    return text.getvalue().encode()


def _csv_line(names: Sequence[str]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerow(names)
    return text.getvalue().encode()


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return format_time(value)
    return str(value)  # ids: asyncpg's own UUID type, which orjson does not know


def _ndjson_page(names: Sequence[str]) -> Callable[[Sequence[Row]], bytes]:
    def encode(rows: Sequence[Row]) -> bytes:
        return b"".join(
            orjson.dumps(
                dict(zip(names, (_json_value(value) for value in row.values()), strict=True)),
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for row in rows
        )

    return encode
