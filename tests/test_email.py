"""Email through the durable outbox: what is queued, what arrives, and that nothing is lost.

The shared daemon writes messages with the default ``file`` transport into
its working directory; tests that kill or configure a daemon start their own.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import trio

from eventd.email.mailer import LEASE_SECONDS, Mailer
from eventd.email.messages import OutboxMessage
from eventd.email.transports import FileTransport, TransportError
from eventd.storage.database import open_database
from eventd.storage.migrations import apply_migrations
from tests.conftest import create_event, future, mail_to, person, read_mail, register
from tests.support import DaemonProcess, run_sql

WAIT_SECONDS = 20





def parts(message: EmailMessage) -> dict[str, str]:
    found = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            found[part.get_content_type()] = part.get_content()
    return found


async def test_every_kind_of_message_arrives_with_the_right_content(
    client: httpx.AsyncClient, daemon: DaemonProcess
):
    mailbox = daemon.workdir / "var" / "mail"
    event = await create_event(client, name="Launch Party", maxAttendees=1, location="Pier 9")
    first, second = await person(client), await person(client)
    confirmed = (await register(client, event["id"], first["id"])).json()
    await register(client, event["id"], second["id"], waitlist=True)

    confirmation = await mail_to(mailbox, first["email"], "You're registered: Launch Party")
    assert confirmation["From"] == "noreply@events.example"
    assert confirmation["Message-ID"].endswith("@eventd>")
    body = parts(confirmation)
    assert "Hello Pat Doe" in body["text/plain"]
    assert "Pier 9" in body["text/plain"]
    assert "<p>Hello Pat Doe,</p>" in body["text/html"]
    invite = body["text/calendar"]
    assert f"UID:{confirmed['id']}@eventd" in invite
    start = event["date"].replace("-", "").replace(":", "")
    assert f"DTSTART:{start}" in invite
    assert "DTEND:" in invite
    assert "SUMMARY:Launch Party" in invite
    assert "LOCATION:Pier 9" in invite

    waitlisted = await mail_to(mailbox, second["email"], "You're on the waitlist: Launch Party")
    assert "text/calendar" not in parts(waitlisted)

    cancelled = await client.delete(f"/registrations/{confirmed['id']}",
                                    params={"token": confirmed["manageToken"]})
    assert cancelled.status_code == 204
    await mail_to(mailbox, first["email"], "Registration cancelled: Launch Party")
    promoted = await mail_to(mailbox, second["email"], "A spot opened up: Launch Party")
    assert "text/calendar" in parts(promoted)

    new_date = future(days=40)
    moved = await client.patch(f"/events/{event['id']}", json={"date": new_date})
    assert moved.status_code == 200
    changed = await mail_to(mailbox, second["email"], "Event changed: Launch Party")
    moment = datetime.fromisoformat(new_date.replace("Z", "+00:00"))
    day = f"{moment.day} {moment:%b %Y}, {moment:%H:%M}"  # in the event's zone: UTC
    assert day in parts(changed)["text/plain"]

    assert (await client.delete(f"/events/{event['id']}")).status_code == 204
    await mail_to(mailbox, second["email"], "Event cancelled: Launch Party")
    # The first attendee no longer held a registration: no cancellation for them.
    await trio.sleep(0.3)
    assert len([m for m in read_mail(mailbox) if m["To"] == first["email"]]) == 2


async def test_a_refused_registration_queues_no_message(
    client: httpx.AsyncClient, database_url: str
):
    event = await create_event(client, maxAttendees=1)
    holder, refused = await person(client), await person(client)
    await register(client, event["id"], holder["id"])
    assert (await register(client, event["id"], refused["id"])).status_code == 409
    assert (await register(client, event["id"], holder["id"])).status_code == 409
    rows = await trio.to_thread.run_sync(lambda: run_sql(
        database_url, "SELECT recipient, kind FROM email_outbox WHERE recipient = ANY($1)",
        [holder["email"], refused["email"]]))
    assert [(r["recipient"], r["kind"]) for r in rows] == [
        (holder["email"], "registration_confirmed")]


class FlakyTransport(FileTransport):
    """A real file transport that refuses the first ``failures`` sends."""

    def __init__(self, directory: Path, failures: int) -> None:
        super().__init__(str(directory))
        self.failures = failures
        self.attempts = 0

    async def send(self, message: OutboxMessage, sender: str) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise TransportError("server says 451, try later")
        await super().send(message, sender)


async def test_a_failing_transport_delays_messages_but_loses_and_doubles_none(
    fresh_database_url: str, tmp_path: Path
):
    async with open_database(fresh_database_url, pool_size=3, timeout_seconds=10) as db:
        await apply_migrations(db)
        async with db.connection() as conn:
            await conn.execute(
                "INSERT INTO email_outbox (kind, recipient, payload)"
                " SELECT 'registration_cancelled', 'r' || n || '@x.org', $1::jsonb"
                " FROM generate_series(1, 5) n",
                '{"event": {"id": "e", "name": "Gala", "startsAt": "2030-01-01T10:00:00+00:00",'
                ' "endsAt": "2030-01-01T11:00:00+00:00", "location": "Hall"},'
                ' "attendee": {"id": "a", "name": "R", "email": "r@x.org"},'
                ' "registration": {"id": "x", "status": "confirmed"}}')
        transport = FlakyTransport(tmp_path, failures=7)
        mailer = Mailer(db, transport, "noreply@events.example", backoff_base_seconds=0.01)
        with trio.fail_after(WAIT_SECONDS):
            async with trio.open_nursery() as nursery:
                await nursery.start(mailer.run)
                while (await mailer.status()).pending:
                    assert (await mailer.status()).failing <= 5
                    await trio.sleep(0.02)
                nursery.cancel_scope.cancel()
        rows = await db.fetch("SELECT attempts, sent_at, last_error FROM email_outbox")
    assert all(r["sent_at"] is not None and r["last_error"] is None for r in rows)
    assert sum(r["attempts"] for r in rows) == 5 + 7
    delivered = read_mail(tmp_path)
    assert sorted(m["To"] for m in delivered) == [f"r{n}@x.org" for n in range(1, 6)]
    assert len({m["Message-ID"] for m in delivered}) == 5


@pytest.mark.slow
async def test_kill_9_during_a_burst_leaves_exactly_one_confirmation_each_and_sends_it(
    fresh_database_url: str, workdir: Path
):
    daemon = DaemonProcess(fresh_database_url, workdir).start()
    async with httpx.AsyncClient(base_url=daemon.url, timeout=30,
                                 limits=httpx.Limits(max_connections=100)) as client:
        event = await create_event(client, maxAttendees=300)
        ids = [uuid.uuid4() for _ in range(600)]
        await trio.to_thread.run_sync(lambda: run_sql(
            fresh_database_url, "INSERT INTO attendees (id, name, email)"
            " SELECT id, 'K', id || '@kill.org' FROM unnest($1::uuid[]) id", ids))
        acknowledged = trio.Event()
        count = 0

        async def one(attendee_id: uuid.UUID) -> None:
            nonlocal count
            try:
                r = await client.post("/registrations", json={
                    "eventId": event["id"], "attendeeId": str(attendee_id)})
            except httpx.HTTPError:
                return
            if r.status_code == 201:
                count += 1
                if count >= 150:
                    acknowledged.set()

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for attendee_id in ids:
                    nursery.start_soon(one, attendee_id)
                await acknowledged.wait()
                await trio.to_thread.run_sync(daemon.kill)
    restarted = DaemonProcess(fresh_database_url, workdir).start()
    try:
        # Messages the killed daemon had claimed wait out its lease, then go.
        async with httpx.AsyncClient(base_url=restarted.url) as client:
            with trio.fail_after(LEASE_SECONDS + WAIT_SECONDS):
                for _ in range(10_000):
                    if not (await client.get("/health")).json()["checks"]["email"]["pending"]:
                        break
                    await trio.sleep(0.1)
        rows = await trio.to_thread.run_sync(lambda: run_sql(
            fresh_database_url,
            "SELECT r.id, count(o.id) AS confirmations, count(o.sent_at) AS sent"
            " FROM registrations r LEFT JOIN email_outbox o"
            "  ON o.kind = 'registration_confirmed'"
            "  AND o.payload -> 'registration' ->> 'id' = r.id::text"
            " GROUP BY r.id"))
        assert rows
        assert {(r["confirmations"], r["sent"]) for r in rows} == {(1, 1)}
        files = read_mail(workdir / "var" / "mail")
        confirmations = [m for m in files if m["Subject"].startswith("You're registered")]
        assert len(confirmations) == len(rows)
    finally:
        assert restarted.stop() == 0, restarted.log()


def test_a_message_with_non_ascii_text_survives_the_round_trip():
    from email import message_from_bytes, policy

    from eventd.email.messages import OutboxMessage, compose

    registration_id = str(uuid.uuid4())
    message = OutboxMessage(uuid.uuid4(), "registration_confirmed", "zoe@example.com", {
        "event": {"name": "Café Ünïcode — 東京", "startsAt": "2027-06-01T16:00:00+00:00",
                  "endsAt": "2027-06-01T17:00:00+00:00", "location": "Salle Étoile"},
        "attendee": {"name": "Zoë"},
        "registration": {"id": registration_id},
    })
    raw = compose(message, "noreply@events.example").as_bytes()
    assert raw.isascii()  # every header and body part transfer-encoded
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == "You're registered: Café Ünïcode — 東京"
    assert parsed["Message-ID"] == f"<{message.id}@eventd>"
    assert parsed.get_body(("plain",)).get_content().startswith("Hello Zoë,")
    assert "Salle Étoile" in parsed.get_body(("html",)).get_content()
    calendar = [p for p in parsed.walk() if p.get_content_type() == "text/calendar"]
    assert f"UID:{registration_id}@eventd" in calendar[0].get_content()
    assert "SUMMARY:Café Ünïcode — 東京" in calendar[0].get_content()


async def test_the_mailer_trickles_while_commits_keep_coming(autojump_clock):
    from eventd.email.mailer import BUSY_PAUSE_SECONDS, BUSY_WITHIN_SECONDS, Mailer
    from eventd.email.transports import NoTransport

    mailer = Mailer(None, NoTransport(), "noreply@events.example")  # type: ignore[arg-type]
    start = trio.current_time()
    await mailer._step_aside()  # nothing committed lately: straight on
    assert trio.current_time() == start
    mailer.wake()  # a commit: a rush may be on
    await mailer._step_aside()
    assert trio.current_time() == start + BUSY_PAUSE_SECONDS
    await trio.sleep(BUSY_WITHIN_SECONDS)  # the commits stopped: full speed again
    resumed = trio.current_time()
    await mailer._step_aside()
    assert trio.current_time() == resumed
