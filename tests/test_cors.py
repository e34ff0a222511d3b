"""CORS (``server.cors_origins``): headers asserted on a real daemon's answers.

A daemon of this module's own lists two origins and has an admin token; the
shared daemon lists none. No browser: what a browser decides follows from
these headers (the Fetch standard's CORS check), and they are what is tested.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import future, unique_location
from tests.support import DaemonProcess, scratch_database

ALLOWED = "https://tickets.example.org"
ALSO_ALLOWED = "http://localhost:8080"
STRANGER = "https://evil.example"
TOKEN = "cors-test-token"
CORS_HEADERS = {
    "access-control-allow-origin", "access-control-allow-methods",
    "access-control-allow-headers", "access-control-max-age",
    "access-control-expose-headers", "access-control-allow-credentials",
}


@pytest.fixture(scope="module")
def cors_daemon(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scratch_database(pg_admin_url) as url:
        daemon = DaemonProcess(
            url, tmp_path_factory.mktemp("cors"),
            server={"cors_origins": [ALLOWED, ALSO_ALLOWED]},
            auth={"admin_tokens": [TOKEN]},
        ).start()
        yield daemon.url
        assert daemon.stop() == 0, daemon.log()


@pytest.fixture
async def web(cors_daemon: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cors_daemon, timeout=30) as c:
        yield c


@pytest.fixture
async def event_id(web: httpx.AsyncClient) -> str:
    response = await web.post(
        "/events",
        json={"name": "CORS", "date": future(), "location": unique_location(), "maxAttendees": 5},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def cors_of(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower() in CORS_HEADERS}


def varies_by_origin(response: httpx.Response) -> bool:
    return "origin" in [v.strip().lower() for v in response.headers.get("vary", "").split(",")]


def preflight(method: str, origin: str = ALLOWED, headers: str = "") -> dict[str, str]:
    sent = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        sent["Access-Control-Request-Headers"] = headers
    return sent


# --- public routes ---------------------------------------------------------------------


async def test_a_listed_origin_may_read_public_routes(web: httpx.AsyncClient, event_id: str):
    for origin in (ALLOWED, ALSO_ALLOWED):
        response = await web.get(f"/events/{event_id}", headers={"Origin": origin})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin
        assert "access-control-allow-credentials" not in response.headers
        exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
        assert {"Location", "Retry-After", "Idempotent-Replayed"} <= exposed
        assert varies_by_origin(response)


async def test_errors_of_public_routes_are_readable_too(web: httpx.AsyncClient):
    response = await web.get(f"/events/{uuid.uuid4()}", headers={"Origin": ALLOWED})
    assert response.status_code == 404
    assert response.headers["access-control-allow-origin"] == ALLOWED
    refused = await web.post("/attendees", json={"name": ""}, headers={"Origin": ALLOWED})
    assert refused.status_code == 400
    assert refused.headers["access-control-allow-origin"] == ALLOWED


async def test_another_origin_gets_no_cors_headers_but_the_answer_still_varies(
    web: httpx.AsyncClient, event_id: str
):
    for headers in ({"Origin": STRANGER}, {"Origin": "null"}, {}):
        response = await web.get(f"/events/{event_id}", headers=headers)
        assert response.status_code == 200
        assert cors_of(response) == {}, headers
        assert varies_by_origin(response), headers
    # Origins are compared whole: scheme, host and port.
    for near_miss in ("http://tickets.example.org", "https://tickets.example.org:8443",
                      "https://TICKETS.example.org.evil.example", ALLOWED + "/"):
        response = await web.get(f"/events/{event_id}", headers={"Origin": near_miss})
        assert cors_of(response) == {}, near_miss


async def test_a_preflight_from_a_listed_origin_is_answered(web: httpx.AsyncClient):
    response = await web.options(
        "/attendees", headers=preflight("POST", headers="content-type, idempotency-key"))
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-methods"] == "POST"
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert allowed == {"Content-Type", "Idempotency-Key"}
    assert int(response.headers["access-control-max-age"]) > 0
    assert varies_by_origin(response)
    assert response.content == b""

    # The route the real request takes decides: DELETE /registrations/{id} is public.
    cancel = await web.options(f"/registrations/{uuid.uuid4()}",
                               headers=preflight("DELETE"))
    assert cancel.status_code == 204
    assert cancel.headers["access-control-allow-methods"] == "DELETE"


async def test_a_preflight_asks_for_no_header_it_may_not_send(web: httpx.AsyncClient):
    response = await web.options(
        "/attendees", headers=preflight("POST", headers="authorization, x-custom"))
    assert response.status_code == 204
    assert "access-control-allow-headers" not in response.headers  # so the browser refuses


async def test_preflights_that_are_refused_carry_no_cors_headers(
    web: httpx.AsyncClient, event_id: str
):
    cases = [
        ("/attendees", preflight("POST", origin=STRANGER)),
        (f"/events/{event_id}", preflight("PUT")),  # no such method
        ("/nowhere", preflight("GET")),  # no such route
        (f"/events/{event_id}", preflight("PATCH")),  # admin
        (f"/events/{event_id}", preflight("DELETE")),  # admin
        ("/events", preflight("POST")),  # admin
        ("/attendees", preflight("GET")),  # admin
        ("/metrics", preflight("GET")),  # admin
    ]
    for path, headers in cases:
        response = await web.options(path, headers=headers)
        assert response.status_code != 204, (path, headers)
        assert cors_of(response) == {}, (path, headers, response.headers)


# --- admin routes ----------------------------------------------------------------------


async def test_admin_routes_never_send_cors_headers(web: httpx.AsyncClient, event_id: str):
    admin = {"Authorization": f"Bearer {TOKEN}", "Origin": ALLOWED}
    answers = [
        await web.get("/attendees", headers=admin),
        await web.get("/metrics", headers=admin),
        await web.get(f"/registrations/event/{event_id}", headers=admin),
        await web.get(f"/events/{event_id}/registrations/export", headers=admin),
        await web.get("/attendees/export", headers=admin),
        await web.patch(f"/events/{event_id}", json={"name": "Renamed"}, headers=admin),
        await web.get("/attendees", headers={"Origin": ALLOWED}),  # 401
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 200, 200, 401]
    for answer in answers:
        assert cors_of(answer) == {}, answer.request.url
        assert not varies_by_origin(answer), answer.request.url


# --- without origins -------------------------------------------------------------------


async def test_without_origins_no_route_sends_cors_headers(client: httpx.AsyncClient):
    response = await client.get("/events", headers={"Origin": ALLOWED})
    assert response.status_code == 200
    assert cors_of(response) == {}
    assert not varies_by_origin(response)
    options = await client.options("/attendees", headers=preflight("POST"))
    assert cors_of(options) == {}

