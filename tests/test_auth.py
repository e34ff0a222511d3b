"""Admin routes behind bearer tokens, when tokens are configured.

Its own daemon (configured with tokens) on its own database; loopback only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import assert_problem, future, unique_location
from tests.support import DaemonProcess

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def guarded(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    daemon = DaemonProcess(database_url, tmp_path_factory.mktemp("auth"),
                           auth={"admin_tokens": ["other-token", TOKEN]}).start()
    yield daemon.url
    assert daemon.stop() == 0, daemon.log()


def admin_requests(event_id: str, attendee_id: str) -> list[tuple[str, str, dict | None]]:
    return [
        ("POST", "/events", {"name": "A", "date": future(), "location": unique_location(),
                             "maxAttendees": 5}),
        ("PATCH", f"/events/{event_id}", {"name": "Renamed"}),
        ("GET", "/attendees", None),
        ("GET", f"/registrations/event/{event_id}", None),
        ("DELETE", f"/attendees/{attendee_id}", None),
        ("DELETE", f"/events/{event_id}", None),
        ("GET", "/metrics", None),
    ]


async def test_admin_routes_need_a_valid_bearer_token(guarded: str):
    async with httpx.AsyncClient(base_url=guarded) as client:
        good = {"Authorization": f"Bearer {TOKEN}"}
        event = (await client.post("/events", headers=good, json={
            "name": "Guarded", "date": future(), "location": unique_location(),
            "maxAttendees": 5})).json()
        attendee = (await client.post("/attendees", json={
            "name": "Ada", "email": f"{uuid.uuid4().hex}@example.com"})).json()
        for method, path, body in admin_requests(event["id"], attendee["id"]):
            for headers in ({}, {"Authorization": "Bearer wrong"},
                            {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
                response = await client.request(method, path, json=body, headers=headers)
                assert_problem(response, 401, "unauthorized")
                assert response.headers["www-authenticate"].startswith("Bearer")
            response = await client.request(method, path, json=body, headers=good)
            assert response.status_code in (200, 201, 204), (method, path, response.text)


async def test_public_routes_stay_open(guarded: str):
    async with httpx.AsyncClient(base_url=guarded) as client:
        good = {"Authorization": f"Bearer {TOKEN}"}
        event = (await client.post("/events", headers=good, json={
            "name": "Open", "date": future(), "location": unique_location(),
            "maxAttendees": 5})).json()
        attendee = await client.post("/attendees", json={
            "name": "Bo", "email": f"{uuid.uuid4().hex}@example.com"})
        assert attendee.status_code == 201
        registration = await client.post("/registrations", json={
            "eventId": event["id"], "attendeeId": attendee.json()["id"]})
        assert registration.status_code == 201
        for path in ("/events", f"/events/{event['id']}", "/health",
                     f"/attendees/{attendee.json()['id']}",
                     f"/attendees/{attendee.json()['id']}/registrations",
                     f"/registrations/{registration.json()['id']}"):
            assert (await client.get(path)).status_code == 200, path
        # Its owner acts on it with its manage token, not an admin token.
        cancel = await client.delete(f"/registrations/{registration.json()['id']}",
                                     params={"token": registration.json()["manageToken"]})
        assert cancel.status_code == 204


def test_open_admin_on_a_public_bind_refuses_to_start(workdir: Path, database_url: str):
    import subprocess
    import sys

    config = workdir / "open.toml"
    config.write_text(f'[server]\nbind = "0.0.0.0:0"\n[database]\nurl = "{database_url}"\n')
    result = subprocess.run([sys.executable, "-m", "eventd", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "auth.admin_tokens" in result.stderr
