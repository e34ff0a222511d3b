"""The SMTP transport against a real SMTP server (aiosmtpd), over loopback.

The daemon is a process of its own with ``email.transport = "smtp"``; the
server runs in this process (aiosmtpd's own thread) and can refuse or vanish.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from aiosmtpd.controller import Controller

from tests.conftest import create_event, register
from tests.support import DaemonProcess, free_port

pytestmark = pytest.mark.slow

WAIT_SECONDS = 30


class Inbox:
    """An aiosmtpd handler: keeps what it accepts; refuses while told to."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refusing = False
        self.refused = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refusing:
            self.refused += 1
            return "451 4.3.0 Try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def to(self, recipient: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m["To"] == recipient]


class Server:
    """The SMTP server, which a test may take down and bring back on the same port."""

    def __init__(self, inbox: Inbox) -> None:
        self.port = free_port()
        self._inbox = inbox
        self._controller: Controller | None = None

    def up(self) -> None:
        # A plain asyncio loop of its own: trio-asyncio (imported by other tests
        # in this process) replaces the loop policy, which must not reach this thread.
        self._controller = Controller(self._inbox, hostname="127.0.0.1", port=self.port,
                                      loop=asyncio.SelectorEventLoop())
        self._controller.start()

    def down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, Server]]:
    inbox = Inbox()
    server = Server(inbox)
    server.up()
    yield inbox, server
    server.down()


@pytest.fixture
def smtp_daemon(
    smtp: tuple[Inbox, Server], fresh_database_url: str, workdir: Path
) -> Iterator[DaemonProcess]:
    _, server = smtp
    daemon = DaemonProcess(fresh_database_url, workdir, email={
        "transport": "smtp", "host": "127.0.0.1", "port": server.port,
        "security": "none", "from": "tickets@events.example"}).start()
    yield daemon
    assert daemon.stop() == 0, daemon.log()


async def until(condition: Callable[[], bool]) -> None:
    """Poll a condition another thread or process makes true, within WAIT_SECONDS."""
    with trio.fail_after(WAIT_SECONDS):
        while not condition():  # noqa: ASYNC110 - the SMTP server lives in another thread
            await trio.sleep(0.05)


async def arrived(inbox: Inbox, recipient: str, count: int = 1) -> list[EmailMessage]:
    await until(lambda: len(inbox.to(recipient)) >= count)
    return inbox.to(recipient)


async def attendee(client: httpx.AsyncClient) -> dict[str, Any]:
    address = f"smtp.{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post("/attendees", json={"name": "Sam", "email": address})
    return response.json()  # type: ignore[no-any-return]


async def test_messages_arrive_over_smtp(smtp, smtp_daemon):
    inbox, _ = smtp
    async with httpx.AsyncClient(base_url=smtp_daemon.url) as client:
        event = await create_event(client, name="Concert", maxAttendees=1)
        first, second = await attendee(client), await attendee(client)
        registration = (await register(client, event["id"], first["id"])).json()
        await register(client, event["id"], second["id"], waitlist=True)
        [confirmation] = await arrived(inbox, first["email"])
        [waitlisted] = await arrived(inbox, second["email"])
        await client.delete(f"/registrations/{registration['id']}",
                            params={"token": registration["manageToken"]})
        cancelled, = [m for m in await arrived(inbox, first["email"], 2)
                      if m["Subject"].startswith("Registration cancelled")]
        promoted, = [m for m in await arrived(inbox, second["email"], 2)
                     if m["Subject"].startswith("A spot opened up")]
    assert confirmation["Subject"] == "You're registered: Concert"
    assert confirmation["From"] == "tickets@events.example"
    calendar = [p for p in confirmation.walk() if p.get_content_type() == "text/calendar"]
    assert len(calendar) == 1
    assert f"UID:{registration['id']}@eventd" in calendar[0].get_content()
    assert waitlisted["Subject"] == "You're on the waitlist: Concert"
    assert "Concert" in cancelled["Subject"]
    assert promoted.get_body(("plain",)).get_content().startswith("Hello Sam,")


async def test_a_refusing_server_delays_messages_and_loses_none(smtp, smtp_daemon):
    inbox, _ = smtp
    inbox.refusing = True
    async with httpx.AsyncClient(base_url=smtp_daemon.url) as client:
        event = await create_event(client, maxAttendees=5)
        people = [await attendee(client) for _ in range(3)]
        for p in people:
            assert (await register(client, event["id"], p["id"])).status_code == 201
        await until(lambda: inbox.refused >= 3)
        health = (await client.get("/health")).json()
        assert health["status"] == "degraded"
        assert health["checks"]["email"]["failing"] >= 1
        assert all(not inbox.to(p["email"]) for p in people)
        inbox.refusing = False
        for p in people:
            assert len(await arrived(inbox, p["email"])) == 1
        await trio.sleep(1)  # nothing arrives twice
        assert all(len(inbox.to(p["email"])) == 1 for p in people)
        assert (await client.get("/health")).json()["checks"]["email"]["pending"] == 0


async def test_a_server_that_is_down_makes_messages_wait(smtp, smtp_daemon):
    inbox, server = smtp
    server.down()
    async with httpx.AsyncClient(base_url=smtp_daemon.url) as client:
        event = await create_event(client, maxAttendees=5)
        p = await attendee(client)
        assert (await register(client, event["id"], p["id"])).status_code == 201
        with trio.fail_after(WAIT_SECONDS):
            for _ in range(10_000):
                if (await client.get("/health")).json()["checks"]["email"]["failing"]:
                    break
                await trio.sleep(0.1)
        server.up()  # back, on the same port
        assert len(await arrived(inbox, p["email"])) == 1
        await trio.sleep(1)
        assert len(inbox.to(p["email"])) == 1
