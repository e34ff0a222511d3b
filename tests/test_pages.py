"""The public pages: ``/e/{id}`` (sign up) and ``/r/{id}?token=…`` (manage), in a real browser.

Rules as in tests/test_dashboard.py: Debian's Chromium driven by Playwright's
sync API, every wait Playwright's own bounded wait for a state (or the bounded
wait for a mail file); the daemon has an admin token, so the pages prove they
need none; axe-core checks each page; screenshots go to ``$EVENTD_TEST_ARTIFACTS``.

What each browser test needs beyond main: registering from the page needs the
inline attendee and manage tokens (branch ``flow``), the QR needs the ticket
route (branch ``tickets``), the waiting room needs the admission queue
(branch ``queue``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.conftest import MAIL_WAIT_SECONDS, future, read_mail, unique_location
from tests.support import (
    DaemonProcess,
    headless_chromium,
    scratch_database,
    screenshot,
    serious_accessibility_violations,
)

WAIT_MS = 15_000
TOKEN = "pages-test-token"
PAGE_FILES = {
    "pages.css": "text/css; charset=utf-8",
    "pages.js": "text/javascript; charset=utf-8",
    "signup.js": "text/javascript; charset=utf-8",
    "manage.js": "text/javascript; charset=utf-8",
}


# --- plain HTTP -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [f"/e/{uuid.uuid4()}", "/e/not-an-id", f"/r/{uuid.uuid4()}?token=abc", f"/r/{uuid.uuid4()}"],
)
async def test_pages_are_html_locked_to_this_origin(client: httpx.AsyncClient, path: str):
    # One page for every id: an unknown one gets it too, and the page says "not found".
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    host = client.base_url.netloc.decode()
    assert "default-src 'self'" in policy
    assert f"connect-src 'self' ws://{host} wss://{host}" in policy
    assert "'unsafe-inline'" not in policy
    assert "img-src 'self' data:" in policy  # the ticket's QR is a data: URL
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"  # the token never leaves
    assert "token" not in response.text.split("<body>")[0]  # nothing of the request in it
    assert "abc" not in response.text
    scripts = re.findall(r'<script src="([^"]+)"', response.text)
    assert scripts
    assert all(src.startswith("/pages/") for src in scripts)
    assert "<script>" not in response.text


@pytest.mark.parametrize(("name", "content_type"), sorted(PAGE_FILES.items()))
async def test_page_files_are_served_with_their_types(
    client: httpx.AsyncClient, name: str, content_type: str
):
    response = await client.get(f"/pages/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert "http://" not in response.text  # nothing from elsewhere
    assert "https://" not in response.text
    assert "innerHTML" not in response.text  # API text goes in as text, never as markup


@pytest.mark.parametrize("name", ["signup.html", "../pages.py", "nope.js", "x" * 10_000])
async def test_only_the_page_files_are_served(client: httpx.AsyncClient, name: str):
    response = await client.get(f"/pages/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert len(response.json()["detail"]) < 200  # a huge name is not said back whole


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon_with_token(
    pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    with scratch_database(pg_admin_url) as url:
        daemon = DaemonProcess(url, tmp_path_factory.mktemp("pages"),
                               auth={"admin_tokens": [TOKEN]}).start()
        try:
            yield daemon
        finally:
            assert daemon.stop() == 0, daemon.log()


@pytest.fixture(scope="module")
def browser(daemon_with_token: DaemonProcess) -> Iterator[Browser]:
    """After the daemon: see ``headless_chromium``."""
    with headless_chromium() as launched:
        yield launched


class Organizer:
    """The admin API, for setting the scene the browser meets."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30,
                                 headers={"Authorization": f"Bearer {TOKEN}"})

    def event(self, name: str, max_attendees: int = 10, **fields: Any) -> dict[str, Any]:
        body = {"name": name, "date": future(10), "location": unique_location(),
                "maxAttendees": max_attendees, **fields}
        response = self.http.post("/events", json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def register(self, event_id: str, **fields: Any) -> dict[str, Any]:
        """A registration of someone else's, with its manage token."""
        attendee = {"name": "Someone Else", "email": f"o.{uuid.uuid4().hex[:12]}@example.com"}
        response = self.http.post("/registrations", json={
            "eventId": event_id, "attendee": attendee, "waitlist": True, **fields})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def registration(self, registration_id: str) -> dict[str, Any]:
        response = self.http.get(f"/registrations/{registration_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def organizer(daemon_with_token: DaemonProcess) -> Iterator[Organizer]:
    api = Organizer(daemon_with_token.url)
    with api.http:
        yield api


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page that fails the test on any script error or refused resource."""
    expect.set_options(timeout=WAIT_MS)
    context = browser.new_context(locale="en-GB", timezone_id="America/New_York")
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def note(message: ConsoleMessage) -> None:
        # An HTTP error the page asked for and shows (a 404 of an unknown id, a refused
        # stream of one) is logged by Chromium; anything else (a CSP refusal, a script
        # error) is not expected.
        shown = "Failed to load resource" in message.text or (
            message.text.startswith("WebSocket connection to")
            and message.text.endswith("Unexpected response code: 404"))
        if message.type == "error" and not shown:
            problems.append(message.text)

    opened.on("console", note)
    try:
        yield opened
        assert problems == [], problems
    finally:
        context.close()


def new_address() -> str:
    return f"pat.{uuid.uuid4().hex[:12]}@example.com"


def sign_up(page: Page, name: str, address: str) -> None:
    """Fill in the form by keyboard and send it with Enter."""
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email address").fill(address)
    page.get_by_label("Email address").press("Enter")


def manage_link(mailbox: Path, recipient: str) -> str:
    """The path of the manage link in the first email to ``recipient``, once it has come."""

    async def wait() -> str:
        with trio.fail_after(MAIL_WAIT_SECONDS):
            while True:
                for message in read_mail(mailbox):
                    if message["To"] == recipient:
                        body = message.get_body(preferencelist=("plain", "html"))
                        assert body is not None
                        found = re.search(r"https?://[^/\s]+(/r/[0-9a-f-]{36}\?token=[^\s\"<>]+)",
                                          body.get_content())
                        assert found, body.get_content()
                        return found.group(1)
                await trio.sleep(0.05)

    return trio.run(wait)


def test_an_unknown_event_or_registration_says_not_found(
    daemon_with_token: DaemonProcess, page: Page
):
    page.goto(f"{daemon_with_token.url}/e/{uuid.uuid4()}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Event not found")
    expect(page.get_by_role("alert")).to_contain_text("There is no such event")
    expect(page.get_by_role("status")).to_have_text("Not found")
    expect(page.get_by_label("Your name")).to_be_hidden()
    screenshot(page, "signup-not-found.png")
    assert serious_accessibility_violations(page) == []

    page.goto(f"{daemon_with_token.url}/r/{uuid.uuid4()}?token=nothing")
    expect(page.get_by_role("heading", level=1)).to_have_text("Registration not found")
    expect(page.get_by_role("alert")).to_contain_text("There is no such registration")


def test_signing_up_for_an_instant_event_shows_the_ticket(
    daemon_with_token: DaemonProcess, organizer: Organizer, page: Page
):
    """Needs the branches flow (inline attendee, manage token) and tickets (the QR)."""
    created = organizer.event(f"Launch <b>night</b> {uuid.uuid4().hex[:6]}", max_attendees=5,
                              date="2031-07-04T16:30:00Z", timezone="Europe/Berlin",
                              description="Doors at six.")
    page.goto(f"{daemon_with_token.url}/e/{created['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(created["name"])  # text, not markup
    details = page.locator("#event-details")
    expect(details).to_contain_text("4 Jul 2031, 18:30 CEST")  # the event's zone, not the reader's
    expect(details).to_contain_text(created["location"])
    expect(page.get_by_role("status")).to_have_text("Live")
    seats = page.locator("#seats")
    expect(seats).to_have_text("5 of 5 seats left")
    organizer.register(created["id"])  # someone else takes a seat: the page follows
    expect(seats).to_have_text("4 of 5 seats left")
    screenshot(page, "signup-form.png")
    assert serious_accessibility_violations(page) == []

    # Missing fields are said at the field, and focus goes to the first.
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_label("Your name")).to_be_focused()
    expect(page.get_by_label("Your name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("Please enter your name.")).to_be_visible()

    address = new_address()
    sign_up(page, "Pat Doe", address)
    result = page.get_by_role("heading", name="You're registered")
    expect(result).to_be_focused()
    expect(page.get_by_text(f"A confirmation is on its way to {address}.")).to_be_visible()
    qr = page.get_by_role("img", name=re.compile("QR code"))
    expect(qr).to_be_visible()
    expect(qr).to_have_attribute("src", re.compile(r"^data:image/svg\+xml;base64,"))
    expect(seats).to_have_text("3 of 5 seats left")
    manage = page.get_by_role("link", name="Manage your registration")
    expect(manage).to_have_attribute("href", re.compile(r"^/r/[0-9a-f-]{36}\?token=.+"))
    screenshot(page, "signup-confirmed.png")
    assert serious_accessibility_violations(page) == []

    # The manage link from the page opens the same registration.
    manage.click()
    expect(page.get_by_role("heading", name="You're registered")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    expect(page.get_by_role("link", name=created["name"])).to_have_attribute(
        "href", f"/e/{created['id']}")


def test_a_full_event_puts_the_page_on_the_waitlist_and_offers_a_freed_seat(
    daemon_with_token: DaemonProcess, organizer: Organizer, page: Page
):
    """Needs flow (offers) and tickets (the QR at the end)."""
    created = organizer.event(f"Small room {uuid.uuid4().hex[:6]}", max_attendees=1,
                              offerMinutes=30)
    taken = organizer.register(created["id"])
    ahead = organizer.register(created["id"])
    assert ahead["status"] == "waitlisted"
    page.goto(f"{daemon_with_token.url}/e/{created['id']}")
    expect(page.locator("#seats")).to_have_text("Full · 1 on the waitlist")
    expect(page.get_by_text("The event is full: you will join the waitlist")).to_be_visible()
    expect(page.get_by_role("button", name="Join the waitlist")).to_be_visible()

    sign_up(page, "Pat Doe", new_address())
    expect(page.get_by_role("heading", name="You're on the waitlist")).to_be_focused()
    position = page.locator("#result-position")
    expect(position).to_have_text("Your position on the waitlist: 2")
    expect(position).to_have_attribute("aria-live", "polite")
    screenshot(page, "signup-waitlisted.png")

    # The one ahead leaves: the page's position falls live.
    cancelled = organizer.http.delete(f"/registrations/{ahead['id']}",
                                      headers={"Registration-Token": ahead["manageToken"]})
    assert cancelled.status_code == 204, cancelled.text
    expect(position).to_have_text("Your position on the waitlist: 1")

    # The seat frees: it is offered to this page, which counts down and confirms.
    freed = organizer.http.delete(f"/registrations/{taken['id']}",
                                  headers={"Registration-Token": taken["manageToken"]})
    assert freed.status_code == 204, freed.text
    expect(page.get_by_role("heading", name="A seat is yours to claim")).to_be_focused()
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^(29|30):\d\d$"))
    expect(page.locator("#hold-announce")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#hold-announce")).to_contain_text("minutes left to confirm")
    screenshot(page, "signup-offered.png")
    assert serious_accessibility_violations(page) == []
    page.get_by_role("button", name="Confirm my seat").click()
    expect(page.get_by_role("heading", name="You're registered")).to_be_focused()
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()


def test_email_confirmation_goes_through_the_emailed_manage_page(
    daemon_with_token: DaemonProcess, organizer: Organizer, page: Page
):
    """Needs flow (email confirmation, the manage link) and tickets (the QR)."""
    created = organizer.event(f"Workshop {uuid.uuid4().hex[:6]}", max_attendees=3,
                              confirmation="email", holdMinutes=20)
    page.goto(f"{daemon_with_token.url}/e/{created['id']}")
    address = new_address()
    sign_up(page, "Pat Doe", address)
    expect(page.get_by_role("heading", name="Check your email")).to_be_focused()
    expect(page.get_by_text(f"We sent a link to {address}.")).to_be_visible()
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^(19|20):\d\d$"))
    expect(page.get_by_role("button", name="Confirm my seat")).to_be_hidden()  # no token here
    expect(page.locator("#seats")).to_have_text("2 of 3 seats left")  # the hold takes a seat
    screenshot(page, "signup-check-email.png")

    link = manage_link(daemon_with_token.workdir / "var" / "mail", address)
    page.goto(f"{daemon_with_token.url}{link}")
    expect(page.get_by_role("heading", name="Confirm your seat")).to_be_visible()
    expect(page.get_by_role("link", name=created["name"])).to_be_visible()
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^(19|20):\d\d$"))
    screenshot(page, "manage-held.png")
    assert serious_accessibility_violations(page) == []
    page.get_by_role("button", name="Confirm my seat").click()
    expect(page.get_by_role("heading", name="You're registered")).to_be_focused()
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    expect(page.get_by_role("button", name="Confirm my seat")).to_be_hidden()
    screenshot(page, "manage-confirmed.png")
    assert serious_accessibility_violations(page) == []

    # Cancelling takes a second, explicit step; "keep it" changes nothing.
    cancel = page.get_by_role("button", name="Cancel registration…")
    cancel.click()
    expect(cancel).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("heading", name="Cancel this registration?")).to_be_focused()
    screenshot(page, "manage-cancel-step.png")
    assert serious_accessibility_violations(page) == []
    page.keyboard.press("Escape")
    expect(page.get_by_role("heading", name="Cancel this registration?")).to_be_hidden()
    expect(cancel).to_be_focused()
    registration_id = link.split("/")[2].split("?")[0]
    assert organizer.registration(registration_id)["status"] == "confirmed"

    cancel.press("Enter")
    page.get_by_role("button", name="No, keep it").click()
    expect(cancel).to_be_focused()
    cancel.click()
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(page.get_by_role("heading", name="This registration is cancelled")).to_be_focused()
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_hidden()
    expect(cancel).to_be_hidden()
    assert organizer.registration(registration_id)["status"] == "cancelled"
    screenshot(page, "manage-cancelled.png")


def test_the_manage_page_acts_only_with_the_registrations_token(
    daemon_with_token: DaemonProcess, organizer: Organizer, page: Page
):
    """Needs flow (holds and manage tokens)."""
    created = organizer.event(f"Seminar {uuid.uuid4().hex[:6]}", max_attendees=3)
    held = organizer.register(created["id"], hold=True)
    assert held["status"] == "held"

    page.goto(f"{daemon_with_token.url}/r/{held['id']}")  # no token: the status only
    expect(page.get_by_role("heading", name="Confirm your seat")).to_be_visible()
    expect(page.get_by_text("This link has no token")).to_be_visible()
    expect(page.get_by_role("button", name="Confirm my seat")).to_be_hidden()
    expect(page.get_by_role("button", name="Cancel registration…")).to_be_hidden()

    page.goto(f"{daemon_with_token.url}/r/{held['id']}?token=not-the-token")
    page.get_by_role("button", name="Confirm my seat").click()
    expect(page.get_by_role("alert")).to_have_text(
        "This link's token does not match the registration. Use the link from your email.")
    assert organizer.registration(held["id"])["status"] == "held"

    page.goto(f"{daemon_with_token.url}/r/{held['id']}?token={held['manageToken']}")
    page.get_by_role("button", name="Confirm my seat").click()
    expect(page.get_by_role("heading", name="You're registered")).to_be_focused()
    assert organizer.registration(held["id"])["status"] == "confirmed"


def test_an_address_already_known_gets_check_your_email(
    daemon_with_token: DaemonProcess, organizer: Organizer, page: Page
):
    """Needs flow (inline attendee)."""
    # Nobody acts for an address they do not own: the link goes to that address.
    created = organizer.event(f"Talk {uuid.uuid4().hex[:6]}", max_attendees=5)
    address = new_address()
    known = organizer.http.post("/attendees", json={"name": "Pat Doe", "email": address})
    assert known.status_code == 201, known.text
    page.goto(f"{daemon_with_token.url}/e/{created['id']}")
    sign_up(page, "Pat Doe", address)
    expect(page.get_by_role("heading", name="Check your email")).to_be_focused()
    expect(page.get_by_role("link", name="Manage your registration")).to_be_hidden()


def test_the_waiting_room_admits_the_page_in_turn(
    daemon_with_token: DaemonProcess, organizer: Organizer, page: Page
):
    """Join before opening, get a place drawn at opening, watch it fall, get in, register.

    Needs queue (the waiting room), flow (registering) and tickets (the QR). The draw is
    random: drawn first or second (1 in 5) there is no fall to see, only the admission.
    """
    opens = datetime.now(UTC) + timedelta(seconds=10)  # time for the crowd to join first
    created = organizer.event(
        f"Rush {uuid.uuid4().hex[:6]}", max_attendees=50,
        salesStartAt=opens.isoformat().replace("+00:00", "Z"),
        admission={"ratePerMinute": 30, "tokenMinutes": 5},
    )
    queue_path = f"/events/{created['id']}/queue"
    page.goto(f"{daemon_with_token.url}/e/{created['id']}")
    expect(page.get_by_role("heading", name="Waiting room")).to_be_visible()
    expect(page.get_by_label("Your name")).to_be_hidden()  # no form before its turn
    page.get_by_role("button", name="Join the queue").click()
    position = page.locator("#queue-position")
    expect(position).to_have_attribute("aria-live", "polite")
    expect(position).to_have_text("You are in the queue.")  # no place before opening
    for _ in range(9):  # a crowd joins before opening too
        joined = organizer.http.post(queue_path)
        assert joined.status_code == 201, joined.text
        assert joined.json()["rank"] is None
    screenshot(page, "signup-queue-before-opening.png")
    assert serious_accessibility_violations(page) == []

    # Every position the page says, in order, until the form opens.
    page.evaluate("""() => {
        window.positionsSaid = [];
        const node = document.getElementById("queue-position");
        new MutationObserver(() => window.positionsSaid.push(node.textContent))
            .observe(node, { childList: true, characterData: true, subtree: true });
    }""")
    expect(position).to_have_text(re.compile(r"^You are number \d+ in the queue\.$"),
                                  timeout=WAIT_MS + 10_000)
    ticket = page.evaluate("id => JSON.parse(localStorage.getItem(`eventd.queue.${id}`))",
                           created["id"])
    state = organizer.http.get(f"{queue_path}/{ticket['ticketId']}",
                               params={"token": ticket["token"]}).json()
    rank = state["rank"]
    assert 1 <= rank <= 10
    screenshot(page, "signup-queue-position.png")

    signup_title = page.get_by_role("heading", name="Register")
    expect(signup_title).to_be_focused(timeout=WAIT_MS + rank * 2_000)  # 30 a minute
    expect(page.locator("#admission")).to_contain_text("It is your turn. Register within")
    expect(page.locator("#admission").get_by_role("timer")).to_have_text(
        re.compile(r"^0[45]:\d\d$"))
    said = [int(n) for n in re.findall(r"number (\d+)", " ".join(page.evaluate(
        "() => window.positionsSaid")))]
    assert said, "no position was said"
    assert said == sorted(said, reverse=True), said  # it only ever fell
    assert said[0] <= rank
    if rank >= 3:  # drawn early, there is little to fall: a few ranks admit in one step
        assert len(set(said)) >= 2, said
    screenshot(page, "signup-queue-admitted.png")

    sign_up(page, "Pat Doe", new_address())
    expect(page.get_by_role("heading", name="You're registered")).to_be_focused()
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
