"""GET /metrics: Prometheus text that a scraper can parse, with the series API.md lists."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import open_websocket_url

from tests.conftest import create_attendee, create_event
from tests.support import next_message, ws_url


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def test_metrics_count_requests_registrations_streams_and_commits(
    client: httpx.AsyncClient, daemon
):
    event = await create_event(client, maxAttendees=1)
    first, second = await create_attendee(client), await create_attendee(client)
    before = samples((await client.get("/metrics")).text)
    for attendee in (first, second):
        await client.post("/registrations", json={"eventId": event["id"],
                                                  "attendeeId": attendee["id"]})
    async with open_websocket_url(ws_url(daemon.url, f"/ws/events/{event['id']}")) as ws:
        await next_message(ws)
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    def grew(name: str, by: float = 1, **labels: str) -> None:
        old = before.get((name, tuple(sorted(labels.items()))), 0)
        assert value(after, name, **labels) >= old + by, name

    grew("eventd_http_requests_total", route="/registrations", method="POST", status="201")
    grew("eventd_http_requests_total", route="/registrations", method="POST", status="409")
    grew("eventd_http_request_duration_seconds_count", 2, route="/registrations",
         method="POST")
    grew("eventd_registrations_total", outcome="confirmed")
    grew("eventd_registrations_total", outcome="event_full")
    grew("eventd_writer_batch_size_count", 2)
    grew("eventd_writer_commit_seconds_count", 2)
    assert value(after, "eventd_writer_batch_size_bucket", le="+Inf") == value(
        after, "eventd_writer_batch_size_count")
    assert value(after, "eventd_websocket_connections") >= 1
    assert value(after, "eventd_actors_live") >= 1
    assert ("eventd_email_outbox_pending", ()) in after
    assert ("eventd_websocket_dropped_clients_total", ()) in after
    assert value(after, "eventd_http_connections") >= 2  # this client's, and the stream's
    for cap in ("server.max_connections", "server.max_connections_per_client"):
        assert ("eventd_http_connections_refused_total", (("cap", cap),)) in after


async def test_unmatched_paths_share_one_label(client: httpx.AsyncClient):
    for path in ("/nope/1", "/nope/2", "/nope/3"):
        assert (await client.get(path)).status_code == 404
    found = samples((await client.get("/metrics")).text)
    assert value(found, "eventd_http_requests_total", route="unmatched", method="GET",
                 status="404") >= 3
    assert not any("/nope/" in dict(labels).get("route", "") for _, labels in found)
