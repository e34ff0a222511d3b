"""The public pages: an event's signup page and a registration's manage page.

- ``GET /e/{eventId}`` — sign up: the event in its own time zone, live seats,
  the admission queue when the event has one, a name and email form, then the
  result (confirmed with the ticket, check your email, or waitlisted).
- ``GET /r/{registrationId}?token=…`` — the manage page that every email links
  to: status, ticket, confirm, cancel.

Each page is one static file for every id: its script reads the id (and the
token) from its own address and talks to the public API and the event's
stream, so nothing of the request is ever written into the page. An unknown id
still gets the page, which says "not found" once the API does.
"""

from __future__ import annotations

from quart import Blueprint, Response

from eventd.http import static_files

blueprint = Blueprint("pages", __name__)

# The only files served under /pages/, with their types.
ASSET_TYPES = {
    "pages.css": "text/css; charset=utf-8",
    "pages.js": "text/javascript; charset=utf-8",
    "signup.js": "text/javascript; charset=utf-8",
    "manage.js": "text/javascript; charset=utf-8",
}
SIGNUP = "signup.html"
MANAGE = "manage.html"


@blueprint.get("/e/<event_id>")
async def signup(event_id: str) -> Response:
    return static_files.html_page(static_files.read(SIGNUP).decode())


@blueprint.get("/r/<registration_id>")
async def manage(registration_id: str) -> Response:
    return static_files.html_page(static_files.read(MANAGE).decode())


@blueprint.get("/pages/<name>")
async def asset(name: str) -> Response:
    return static_files.asset(name, ASSET_TYPES, "page")
