from __future__ import annotations

import email
import email.policy
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.support import DaemonProcess, postgres_server, scratch_database


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(pg_admin_url: str) -> Iterator[str]:
    """The shared daemon's database, fresh for this session."""
    with scratch_database(pg_admin_url) as url:
        yield url


@pytest.fixture
def fresh_database_url(pg_admin_url: str) -> Iterator[str]:
    """A database of this test's own, for tests that count everything in it."""
    with scratch_database(pg_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def daemon(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """The real daemon, shared by the tests of a session."""
    proc = DaemonProcess(database_url, tmp_path_factory.mktemp("daemon")).start()
    yield proc
    code = proc.stop()
    assert code == 0, f"eventd exited {code}:\n{proc.log()}"


@pytest.fixture
async def client(daemon: DaemonProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as c:
        yield c


@pytest.fixture
def two_daemons(fresh_database_url: str, tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    """Two daemons on one fresh database, stopped cleanly after the test."""
    daemons = [DaemonProcess(fresh_database_url, tmp_path) for _ in range(2)]
    for daemon in daemons:
        daemon.start()
    yield daemons
    for daemon in daemons:
        assert daemon.stop() == 0, daemon.log()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


UTC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
PROBLEM_KEYS = {"type", "title", "status", "code", "detail"}
LEAK_MARKERS = ("Traceback", 'File "', "asyncpg", "psycopg", "SELECT ", "INSERT ", "pydantic")


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """A problem+json answer with this status (and code), leaking no internals."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert PROBLEM_KEYS <= body.keys(), body
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    if code is not None:
        assert body["code"] == code
    else:
        assert isinstance(body["code"], str)
        assert body["code"]
    for marker in LEAK_MARKERS:
        assert marker not in response.text, marker
    return body


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def future(days: float = 30, hours: float = 0) -> str:
    moment = datetime.now(UTC) + timedelta(days=days, hours=hours)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def unique_location() -> str:
    return f"Room {uuid.uuid4().hex[:10]}"


async def create_event(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Test event",
        "date": future(),
        "location": unique_location(),
        "maxAttendees": 10,
        **fields,
    }
    response = await client.post("/events", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_attendee(client: httpx.AsyncClient, name: str = "Ada") -> dict[str, Any]:
    email = f"{name.lower()}.{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post("/attendees", json={"name": name, "email": email})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def register(
    client: httpx.AsyncClient, event_id: str, attendee_id: str, waitlist: bool = False
) -> httpx.Response:
    return await client.post(
        "/registrations",
        json={"eventId": event_id, "attendeeId": attendee_id, "waitlist": waitlist},
    )


# --- email ----------------------------------------------------------------------

MAIL_WAIT_SECONDS = 20


def read_mail(directory: Path) -> list[EmailMessage]:
    found = []
    for path in sorted(directory.glob("*.eml")) if directory.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


async def mail_to(directory: Path, recipient: str, subject: str) -> EmailMessage:
    """The one message to ``recipient`` with ``subject``, once it has arrived."""
    with trio.fail_after(MAIL_WAIT_SECONDS):
        while True:
            mine = [m for m in read_mail(directory)
                    if m["To"] == recipient and m["Subject"] == subject]
            if mine:
                assert len(mine) == 1, f"{subject!r} to {recipient} arrived {len(mine)} times"
                return mine[0]
            await trio.sleep(0.05)


async def person(client: httpx.AsyncClient) -> dict[str, Any]:
    address = f"p.{uuid.uuid4().hex[:12]}@example.com"
    response = await client.post("/attendees", json={"name": "Pat Doe", "email": address})
    assert response.status_code == 201
    return response.json()  # type: ignore[no-any-return]
