"""The dashboard at ``GET /``, in a real headless browser against a real daemon.

Rules: Debian's Chromium (``/usr/bin/chromium``) driven by Playwright with the
system binary — nothing is downloaded. Plain sync tests (Playwright's sync
API); every wait is Playwright's own bounded wait for a state, never a timed
assertion. The browser test's daemon has an admin token, so the page proves
it needs none. Screenshots go to ``$EVENTD_TEST_ARTIFACTS`` (default:
``test-artifacts/`` at the repository root); axe-core checks the page.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.conftest import future, unique_location
from tests.support import (
    DaemonProcess,
    headless_chromium,
    screenshot,
    serious_accessibility_violations,
)

WAIT_MS = 10_000
TOKEN = "dashboard-test-token"


# --- plain HTTP -------------------------------------------------------------------------


async def test_index_is_html_locked_to_this_origin(client: httpx.AsyncClient):
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    host = client.base_url.netloc.decode()
    assert "default-src 'self'" in policy
    assert f"connect-src 'self' ws://{host} wss://{host}" in policy
    assert "'unsafe-inline'" not in policy
    assert "http" not in policy.replace(f"ws://{host}", "").replace(f"wss://{host}", "")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<meta name="eventd-almost-full-ratio" content="0.1">' in response.text


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("dashboard.css", "text/css; charset=utf-8"),
    ],
)
async def test_dashboard_files_are_served_with_their_types(
    client: httpx.AsyncClient, name: str, content_type: str
):
    response = await client.get(f"/dashboard/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert "http://" not in response.text  # nothing from elsewhere: no CDN
    assert "https://" not in response.text


@pytest.mark.parametrize("name", ["index.html", "../dashboard.py", "nope.js", "%2e%2e%2fapp.py"])
async def test_only_the_dashboard_files_are_served(client: httpx.AsyncClient, name: str):
    response = await client.get(f"/dashboard/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


# --- the browser ------------------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Request it after the daemon's fixtures (see ``headless_chromium``)."""
    with headless_chromium() as launched:
        yield launched


@pytest.fixture
def daemon_with_token(fresh_database_url: str, workdir: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(fresh_database_url, workdir, auth={"admin_tokens": [TOKEN]}).start()
    try:
        yield daemon
    finally:
        assert daemon.stop() == 0, daemon.log()


class Api:
    """The daemon's API as an organizer uses it, for the browser to watch."""

    def __init__(self, url: str) -> None:
        # No keep-alive: the daemon restarts under the test, and a fresh
        # connection per request never meets one it closed.
        self.http = httpx.Client(
            base_url=url,
            timeout=30,
            headers={"Authorization": f"Bearer {TOKEN}"},
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def event(self, name: str, max_attendees: int, days: float) -> dict[str, Any]:
        body = {
            "name": name,
            "date": future(days),
            "location": unique_location(),
            "maxAttendees": max_attendees,
        }
        response = self.http.post("/events", json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def register(self, event_id: str) -> dict[str, Any]:
        email = f"b.{uuid.uuid4().hex[:12]}@example.com"
        attendee = self.http.post("/attendees", json={"name": "Bea", "email": email})
        assert attendee.status_code == 201, attendee.text
        response = self.http.post(
            "/registrations",
            json={"eventId": event_id, "attendeeId": attendee.json()["id"], "waitlist": True},
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def check_in(self, registration_id: str) -> None:
        ticket = self.http.get(f"/registrations/{registration_id}/ticket")
        assert ticket.status_code == 200, ticket.text
        response = self.http.post("/checkins", json={"ticket": ticket.json()["ticket"]})
        assert response.status_code == 201, response.text

    def delete(self, event_id: str) -> None:
        assert self.http.delete(f"/events/{event_id}").status_code == 204


@pytest.fixture
def api(daemon_with_token: DaemonProcess) -> Iterator[Api]:
    organizer = Api(daemon_with_token.url)
    with organizer.http:
        yield organizer


def progress_of(page: Page, event_id: str) -> Any:
    return page.locator(f'li[data-event-id="{event_id}"]').get_by_role("progressbar")


def test_dashboard_follows_registrations_live_and_survives_a_restart(
    daemon_with_token: DaemonProcess, api: Api, browser: Browser
):
    expect.set_options(timeout=WAIT_MS)
    daemon = daemon_with_token
    # Event text is shown as text: markup in a name must come out as written.
    name = f"Launch <b>party</b> {uuid.uuid4().hex[:6]}"
    small = api.event(name, max_attendees=3, days=10)
    later = api.event("Later talk", max_attendees=50, days=20)

    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    # Refused connections while the daemon is down are expected; nothing else
    # is (a script error, a Content-Security-Policy violation, a missing file).
    def note(message: ConsoleMessage) -> None:
        expected = message.text.startswith("WebSocket connection to") or (
            "ERR_CONNECTION_REFUSED" in message.text
        )
        if message.type == "error" and not expected:
            problems.append(message.text)

    page.on("console", note)
    page.goto(f"{daemon.url}/")

    status = page.get_by_role("status")
    expect(status).to_have_text("Live")
    expect(page.get_by_role("heading", name="Upcoming events")).to_be_visible()
    link = page.get_by_role("link", name=name, exact=True)
    expect(link).to_be_visible()
    items = page.locator("li[data-event-id]")
    expect(items).to_have_count(2)
    expect(items.first).to_have_attribute("data-event-id", small["id"])  # in date order

    bar = progress_of(page, small["id"])
    expect(bar).to_have_attribute("aria-valuenow", "0")
    expect(bar).to_have_attribute("aria-valuemax", "3")
    item = page.locator(f'li[data-event-id="{small["id"]}"]')

    first = api.register(small["id"])
    expect(bar).to_have_attribute("aria-valuenow", "1")
    expect(item).to_contain_text("1 / 3 registered · 2 available · 0 on waitlist · 0 checked in")
    expect(item.get_by_text("Almost full")).to_be_hidden()
    api.check_in(first["id"])
    expect(item).to_contain_text("1 / 3 registered · 2 available · 0 on waitlist · 1 checked in")

    api.register(small["id"])  # 1 spot left of 3: at or under 10 %, at least one spot
    expect(bar).to_have_attribute("aria-valuenow", "2")
    expect(item.get_by_text("Almost full", exact=True)).to_be_visible()

    api.register(small["id"])
    api.register(small["id"])  # onto the waitlist
    expect(item).to_contain_text("3 / 3 registered · 0 available · 1 on waitlist")
    expect(item.get_by_text("Full", exact=True)).to_be_visible()

    created = api.event("Created while watching", max_attendees=5, days=15)
    expect(items).to_have_count(3)
    expect(items.nth(1)).to_have_attribute("data-event-id", created["id"])
    screenshot(page, "dashboard-list.png")
    assert serious_accessibility_violations(page) == []
    # Each event links to its signup page.
    signup = item.get_by_role("link", name=f"Sign-up page of {name}")
    expect(signup).to_have_attribute("href", f"/e/{small['id']}")

    # The daemon goes away and comes back on the same port and database.
    assert daemon.stop() == 0, daemon.log()
    expect(status).to_contain_text("Reconnecting")
    daemon.start()
    api.register(later["id"])  # may land before or after the page is back: either way shown
    expect(status).to_have_text("Live", timeout=3 * WAIT_MS)
    expect(progress_of(page, later["id"])).to_have_attribute("aria-valuenow", "1")
    api.register(later["id"])
    expect(progress_of(page, later["id"])).to_have_attribute("aria-valuenow", "2")
    expect(items).to_have_count(3)

    # One event's own page: its stream, snapshot first, then each change in the log.
    page.get_by_role("link", name="Created while watching", exact=True).click()
    expect(page).to_have_url(re.compile(rf"\?event={created['id']}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Created while watching")
    expect(status).to_have_text("Live")
    log = page.get_by_role("list", name="Changes")
    expect(log.get_by_role("listitem")).to_have_count(1)
    expect(log.get_by_role("listitem").first).to_contain_text("Snapshot")
    event_bar = page.get_by_role("progressbar")
    expect(event_bar).to_have_attribute("aria-valuenow", "0")

    api.register(created["id"])
    expect(event_bar).to_have_attribute("aria-valuenow", "1")
    expect(log.get_by_role("listitem")).to_have_count(2)
    expect(log.get_by_role("listitem").first).to_contain_text("Capacity")
    expect(log.get_by_role("listitem").first).to_contain_text("1 / 5 registered")

    # Here too a restart is survived: the page resumes its stream after seq 2.
    assert daemon.stop() == 0, daemon.log()
    expect(status).to_contain_text("Reconnecting")
    daemon.start()
    api.register(created["id"])
    expect(event_bar).to_have_attribute("aria-valuenow", "2")
    expect(status).to_have_text("Live")
    expect(log.get_by_role("listitem").first).to_contain_text("2 / 5 registered")
    expect(log.get_by_role("listitem").first).to_contain_text("#3")
    screenshot(page, "dashboard-event.png")
    assert serious_accessibility_violations(page) == []
    expect(page.get_by_role("link", name="Open the sign-up page")).to_have_attribute(
        "href", f"/e/{created['id']}")

    api.delete(created["id"])
    expect(page.get_by_text("This event was cancelled.")).to_be_visible()
    expect(status).to_have_text("Stream closed: event cancelled")
    # Back on the list, the cancelled event is gone.
    page.get_by_role("link", name="← All events").click()
    expect(items).to_have_count(2)

    assert problems == [], problems


def test_an_unknown_event_page_says_not_found(daemon: DaemonProcess, browser: Browser):
    expect.set_options(timeout=WAIT_MS)
    page = browser.new_page()
    page.goto(f"{daemon.url}/?event={uuid.uuid4()}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Event not found")
    expect(page.get_by_role("status")).to_have_text("Not found")


def test_an_event_page_shows_the_time_where_the_event_is(daemon: DaemonProcess, browser: Browser):
    expect.set_options(timeout=WAIT_MS)
    created = httpx.post(f"{daemon.url}/events", timeout=30, json={
        "name": f"Zoned {uuid.uuid4().hex[:6]}", "date": "2031-07-04T16:30:00Z",
        "durationMinutes": 90, "location": unique_location(), "maxAttendees": 5,
        "timezone": "Europe/Berlin",
    })
    assert created.status_code == 201, created.text
    # The reader's language writes the zone's name: en-GB says CEST.
    context = browser.new_context(locale="en-GB", timezone_id="America/Los_Angeles")
    try:
        page = context.new_page()
        page.goto(f"{daemon.url}/?event={created.json()['id']}")
        details = page.locator("#event-details")
        expect(details).to_contain_text("4 Jul 2031, 18:30 CEST")  # not the reader's own zone
        expect(details).to_contain_text("4 Jul 2031, 20:00 CEST")
        expect(details).to_contain_text("Europe/Berlin")
    finally:
        context.close()


def test_an_event_page_shows_its_admission_queue_live(daemon: DaemonProcess, browser: Browser):
    expect.set_options(timeout=WAIT_MS)
    created = httpx.post(f"{daemon.url}/events", timeout=30, json={
        "name": f"Queued {uuid.uuid4().hex[:6]}", "date": "2031-07-04T16:30:00Z",
        "location": unique_location(), "maxAttendees": 5, "salesStartAt": future(days=1),
        "admission": {"ratePerMinute": 60, "tokenMinutes": 2},
    })
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]
    for _ in range(3):
        assert httpx.post(f"{daemon.url}/events/{event_id}/queue", timeout=30).status_code == 201
    page = browser.new_page()
    page.goto(f"{daemon.url}/?event={event_id}")
    expect(page.locator("#event-details")).to_contain_text("60 a minute")
    queue = page.get_by_role("region", name="Admission queue")
    expect(queue).to_contain_text("Admitted through rank 0 of 0 ranked · 3 waiting")
    httpx.post(f"{daemon.url}/events/{event_id}/queue", timeout=30)
    expect(queue).to_contain_text("· 4 waiting")  # the next second's queueUpdate
    expect(page.locator("#log li")).to_have_count(1)  # the snapshot; states are not logged


def test_the_dashboard_shows_held_seats_and_check_ins(api: Api, browser: Browser):
    """Needs the holds (branch flow) and check-in (branch tickets)."""
    expect.set_options(timeout=WAIT_MS)
    event = api.event(f"Door test {uuid.uuid4().hex[:6]}", max_attendees=5, days=12)

    def register(**fields: Any) -> dict[str, Any]:
        attendee = {"name": "Bea", "email": f"b.{uuid.uuid4().hex[:12]}@example.com"}
        response = api.http.post("/registrations", json={
            "eventId": event["id"], "attendee": attendee, **fields})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    page = browser.new_page()
    page.goto(f"{api.http.base_url}/")
    item = page.locator(f'li[data-event-id="{event["id"]}"]')
    expect(item).to_contain_text("0 / 5 registered · 5 available · 0 on waitlist")

    register(hold=True)
    expect(item).to_contain_text("0 / 5 registered · 1 held · 4 available · 0 on waitlist")
    confirmed = register()
    ticket = api.http.get(f"/registrations/{confirmed['id']}/ticket")
    assert ticket.status_code == 200, ticket.text
    checked_in = api.http.post("/checkins", json={"ticket": ticket.json()["ticket"]})
    assert checked_in.status_code == 201, checked_in.text
    expect(item).to_contain_text("1 / 5 registered · 1 held · 3 available · 0 on waitlist"
                                 " · 1 checked in")

    # One event's page says the same.
    page.goto(f"{api.http.base_url}/?event={event['id']}")
    expect(page.get_by_role("progressbar")).to_have_attribute(
        "aria-valuetext", re.compile(r"1 held · .* · 1 checked in$"))
