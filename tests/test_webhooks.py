"""Webhooks end to end: the admin routes, and messages from the real daemon to a real receiver.

Rules of this file: receivers are :class:`~tests.support.WebhookReceiver`s
on 127.0.0.1, so the daemon that sends to them (``hooked``, a database of
its own) runs with ``webhooks.allow_private_targets = true``; the guard's
refusals are tested against the shared daemon, which runs with the
default. No test makes a URL the daemon could send to outside this
machine. Every signature is checked with the ``standardwebhooks``
library's own ``Webhook.verify``. Each test removes the endpoints it made.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from standardwebhooks.webhooks import Webhook

from eventd.webhooks import TYPES, targets
from eventd.webhooks.deliverer import LEASE_SECONDS
from tests.conftest import assert_problem, create_attendee, create_event, register
from tests.support import (
    WAIT_SECONDS,
    DaemonProcess,
    Delivered,
    WebhookReceiver,
    scratch_database,
)


@pytest.fixture(scope="module")
def hooked(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with scratch_database(pg_admin_url) as url:
        daemon = DaemonProcess(url, tmp_path_factory.mktemp("hooked"),
                               webhooks={"allow_private_targets": True}).start()
        yield daemon
        assert daemon.stop() == 0, daemon.log()


@pytest.fixture
async def admin(hooked: DaemonProcess) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the hooked daemon; the endpoints made with it are removed afterwards."""
    async with httpx.AsyncClient(base_url=hooked.url, timeout=30) as client:
        yield client
        listed = await client.get("/webhooks", params={"limit": 100})
        for endpoint in listed.json()["items"]:
            await client.delete(f"/webhooks/{endpoint['id']}")


async def receiver_at(nursery: trio.Nursery, *answers: int | None) -> WebhookReceiver:
    receiver = WebhookReceiver(list(answers))
    await nursery.start(receiver.serve)
    return receiver


async def subscribe(
    client: httpx.AsyncClient, receiver: WebhookReceiver, types: list[str]
) -> dict[str, Any]:
    response = await client.post("/webhooks", json={"url": receiver.url, "types": types})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def verified(secret: str, delivered: Delivered) -> dict[str, Any]:
    body: dict[str, Any] = Webhook(secret).verify(delivered.body, delivered.headers)
    return body


async def deliveries(client: httpx.AsyncClient, endpoint: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"/webhooks/{endpoint['id']}/deliveries")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def settled(client: httpx.AsyncClient, endpoint: dict[str, Any]) -> dict[str, Any]:
    """The endpoint's page of deliveries once none is pending."""
    with trio.fail_after(WAIT_SECONDS):
        while True:
            page = await deliveries(client, endpoint)
            if all(d["status"] != "pending" for d in page["items"]):
                return page
            await trio.sleep(0.05)


async def test_a_registration_reaches_each_matching_endpoint_once_signed(
    admin: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    confirmed, everything, deleted = [await receiver_at(nursery) for _ in range(3)]
    a = await subscribe(admin, confirmed, ["registration.confirmed"])
    b = await subscribe(admin, everything, ["*"])
    c = await subscribe(admin, deleted, ["event.deleted"])
    event = await create_event(admin)
    attendee = await create_attendee(admin)
    registration = (await register(admin, event["id"], attendee["id"])).json()

    [got] = await confirmed.wait_for(1)
    body = verified(a["secret"], got)
    shown = (await admin.get(f"/registrations/{registration['id']}")).json()
    assert body["type"] == "registration.confirmed"
    assert body["data"] == shown
    assert body["timestamp"].endswith("Z")

    created, also_confirmed = await everything.wait_for(2)
    assert verified(b["secret"], created)["type"] == "event.created"
    assert verified(b["secret"], created)["data"] == event
    assert verified(b["secret"], also_confirmed)["data"] == shown
    with pytest.raises(Exception, match="signature"):
        verified(b["secret"], got)  # signed with a's secret, not b's

    page = await settled(admin, a)
    assert page["total"] == 1
    [delivery] = page["items"]
    assert delivery["messageId"] == got.message_id
    assert (delivery["type"], delivery["status"], delivery["attempts"]) == (
        "registration.confirmed", "delivered", 1)
    assert (delivery["lastStatusCode"], delivery["lastError"], delivery["nextAttemptAt"]) == (
        200, None, None)
    assert delivery["deliveredAt"] is not None
    assert (await settled(admin, b))["total"] == 2
    assert (await deliveries(admin, c))["total"] == 0
    assert deleted.received == []


async def test_a_cancellation_and_the_promotion_it_causes_arrive_in_order(
    admin: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    receiver = await receiver_at(nursery)
    endpoint = await subscribe(admin, receiver, [t for t in TYPES if t.startswith("registr")])
    event = await create_event(admin, maxAttendees=1)
    first, second = [await create_attendee(admin) for _ in range(2)]
    one = (await register(admin, event["id"], first["id"])).json()
    two = (await register(admin, event["id"], second["id"], waitlist=True)).json()
    cancelled = await admin.delete(f"/registrations/{one['id']}",
                                   params={"token": one["manageToken"]})
    assert cancelled.status_code == 204

    got = [verified(endpoint["secret"], d) for d in await receiver.wait_for(4)]
    assert [(b["type"], b["data"]["id"]) for b in got] == [
        ("registration.confirmed", one["id"]),
        ("registration.waitlisted", two["id"]),
        ("registration.cancelled", one["id"]),
        ("registration.confirmed", two["id"]),
    ]
    assert got[1]["data"]["waitlistPosition"] == 1
    assert got[2]["data"]["status"] == "cancelled"
    assert got[3]["data"] == (await admin.get(f"/registrations/{two['id']}")).json()
    assert len({d.message_id for d in receiver.received}) == 4


async def test_an_event_s_creation_edit_and_deletion_are_announced(
    admin: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    receiver = await receiver_at(nursery)
    endpoint = await subscribe(admin, receiver, ["event.created", "event.updated",
                                                 "event.deleted"])
    event = await create_event(admin)
    edited = (await admin.patch(f"/events/{event['id']}", json={"name": "Renamed"})).json()
    assert (await admin.delete(f"/events/{event['id']}")).status_code == 204
    got = [verified(endpoint["secret"], d) for d in await receiver.wait_for(3)]
    assert [b["type"] for b in got] == ["event.created", "event.updated", "event.deleted"]
    assert got[0]["data"] == event
    assert got[1]["data"] == edited
    assert got[2]["data"]["id"] == event["id"]


async def test_a_410_disables_the_endpoint_and_enabling_it_sends_the_message_again(
    admin: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    receiver = await receiver_at(nursery, 410)
    endpoint = await subscribe(admin, receiver, ["event.created"])
    await create_event(admin)
    [gone] = await receiver.wait_for(1)
    with trio.fail_after(WAIT_SECONDS):
        while True:
            shown = (await admin.get(f"/webhooks/{endpoint['id']}")).json()
            if not shown["enabled"]:
                break
            await trio.sleep(0.05)
    assert "410" in shown["disabledReason"]
    [pending] = (await deliveries(admin, endpoint))["items"]
    assert (pending["status"], pending["lastStatusCode"]) == ("pending", 410)

    enabled = await admin.patch(f"/webhooks/{endpoint['id']}", json={"enabled": True})
    assert enabled.status_code == 200, enabled.text
    assert (enabled.json()["enabled"], enabled.json()["disabledReason"]) == (True, None)
    _, again = await receiver.wait_for(2)
    assert again.message_id == gone.message_id
    verified(endpoint["secret"], again)
    [delivery] = (await settled(admin, endpoint))["items"]
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)


async def test_the_secret_is_shown_once_and_never_logged(
    admin: httpx.AsyncClient, hooked: DaemonProcess, nursery: trio.Nursery
) -> None:
    receiver = await receiver_at(nursery)
    response = await admin.post("/webhooks", json={
        "url": receiver.url, "types": ["event.created", "event.created"],
        "description": "CRM sync"})
    assert response.status_code == 201
    created = response.json()
    assert response.headers["location"] == f"/webhooks/{created['id']}"
    secret = created["secret"]
    assert secret.startswith("whsec_")
    Webhook(secret)  # a key the library takes
    assert created["types"] == ["event.created"]
    assert (created["description"], created["enabled"]) == ("CRM sync", True)
    read = (await admin.get(f"/webhooks/{created['id']}")).json()
    assert read == {k: v for k, v in created.items() if k != "secret"}
    listed = (await admin.get("/webhooks")).json()
    assert read in listed["items"]
    assert (listed["page"], listed["limit"]) == (1, 20)
    patched = await admin.patch(f"/webhooks/{created['id']}",
                                json={"description": "", "types": ["*"]})
    assert "secret" not in patched.json()
    assert patched.json()["types"] == ["*"]
    await create_event(admin)
    await receiver.wait_for(1)
    assert secret.removeprefix("whsec_") not in hooked.log()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1:9/", "types": ["event.exploded"]}, "types.0"),
        ({"url": "http://127.0.0.1:9/", "types": []}, "types"),
        ({"url": "ftp://127.0.0.1/", "types": ["*"]}, "url"),
        ({"url": "not a url", "types": ["*"]}, "url"),
        ({"url": "http://user:pw@127.0.0.1/", "types": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:9/", "types": ["*"], "secret": "mine"}, "secret"),
        ({"url": "http://127.0.0.1:9/", "types": ["*"], "description": "x" * 501}, "description"),
        ({"types": ["*"]}, "url"),
        ({"url": "http://no-such-host.invalid/", "types": ["*"]}, "url"),
    ],
)
async def test_a_bad_webhook_is_refused_and_nothing_is_written(
    admin: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(await admin.post("/webhooks", json=body), 400, "validation_failed")
    assert field in [e["field"] for e in problem["errors"]]
    assert (await admin.get("/webhooks")).json()["total"] == 0


@pytest.mark.parametrize(
    "body", [{}, {"enabled": None}, {"enabled": "yes"}, {"colour": "red"},
             {"url": "gopher://x.org"}, {"types": ["registration.shredded"]}],
)
async def test_a_bad_edit_is_refused(
    admin: httpx.AsyncClient, nursery: trio.Nursery, body: dict[str, Any]
) -> None:
    endpoint = await subscribe(admin, await receiver_at(nursery), ["*"])
    response = await admin.patch(f"/webhooks/{endpoint['id']}", json=body)
    assert_problem(response, 400, "validation_failed")
    unchanged = (await admin.get(f"/webhooks/{endpoint['id']}")).json()
    assert unchanged == {k: v for k, v in endpoint.items() if k != "secret"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/webhooks/nope"), ("GET", f"/webhooks/{uuid.uuid4()}"),
     ("PATCH", f"/webhooks/{uuid.uuid4()}"), ("DELETE", f"/webhooks/{uuid.uuid4()}"),
     ("GET", f"/webhooks/{uuid.uuid4()}/deliveries")],
)
async def test_an_unknown_webhook_is_not_found(
    admin: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"enabled": False} if method == "PATCH" else None
    assert_problem(await admin.request(method, path, json=body), 404, "not_found")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://127.1.2.3/",
        "http://localhost:3000/hook",  # a name, resolved: every address is checked
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4 inside IPv6
        "http://10.0.0.5/",
        "http://172.16.4.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://224.0.0.1/",
        "http://0.0.0.0:3000/",
        "http://100.64.0.1/",
        "http://2130706433/",  # 127.0.0.1 as one number
        "http://0x7f.1/",
    ],
)
async def test_a_target_that_is_not_public_is_refused(client: httpx.AsyncClient, url: str) -> None:
    """The shared daemon runs with webhooks.allow_private_targets = false (the default)."""
    response = await client.post("/webhooks", json={"url": url, "types": ["*"]})
    problem = assert_problem(response, 400, "validation_failed")
    assert [e["field"] for e in problem["errors"]] == ["url"]


@pytest.mark.parametrize(
    ("address", "public"),
    [("1.1.1.1", True), ("2606:4700:4700::1111", True), ("127.0.0.1", False),
     ("10.1.2.3", False), ("169.254.0.1", False), ("::1", False), ("fe80::2", False),
     ("239.1.1.1", False), ("::", False), ("240.0.0.1", False), ("::ffff:10.0.0.1", False),
     ("2002:7f00:1::", False)],  # 6to4 of 127.0.0.1
)
def test_only_public_addresses_pass_the_guard(address: str, public: bool) -> None:
    import ipaddress

    assert (targets.refusal(ipaddress.ip_address(address)) is None) is public


async def test_health_and_metrics_show_a_failing_endpoint(
    admin: httpx.AsyncClient, hooked: DaemonProcess, nursery: trio.Nursery
) -> None:
    receiver = WebhookReceiver(default=500)
    await nursery.start(receiver.serve)
    endpoint = await subscribe(admin, receiver, ["event.created"])
    await create_event(admin)
    await receiver.wait_for(1)
    with trio.fail_after(WAIT_SECONDS):
        while True:
            health = (await admin.get("/health")).json()
            if health["status"] == "degraded":
                break
            await trio.sleep(0.05)
    webhooks = health["checks"]["webhooks"]
    assert (webhooks["status"], webhooks["failingEndpoints"], webhooks["pending"]) == (
        "degraded", 1, 1)
    assert webhooks["oldestPendingSeconds"] >= 0
    metrics = dict(
        line.rsplit(" ", 1) for line in (await admin.get("/metrics")).text.splitlines()
        if line.startswith("eventd_webhook"))
    assert float(metrics['eventd_webhook_deliveries_total{outcome="failed"}']) >= 1
    assert float(metrics["eventd_webhook_pending"]) == 1
    assert float(metrics["eventd_webhook_failing_endpoints"]) == 1
    assert float(metrics["eventd_webhook_oldest_pending_seconds"]) >= 0
    assert float(metrics["eventd_webhook_lag_seconds_count"]) >= 0

    assert (await admin.delete(f"/webhooks/{endpoint['id']}")).status_code == 204
    health = (await admin.get("/health")).json()
    assert health["status"] == "ok"
    assert health["checks"]["webhooks"]["pending"] == 0


@pytest.mark.slow
async def test_kill_9_mid_delivery_loses_no_message_and_keeps_its_id(
    fresh_database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    receiver = WebhookReceiver([None])  # the first request is never answered
    await nursery.start(receiver.serve)
    sections: dict[str, dict[str, Any]] = {"webhooks": {"allow_private_targets": True}}
    daemon = DaemonProcess(fresh_database_url, tmp_path, **sections).start()
    async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
        endpoint = await subscribe(client, receiver, ["event.created"])
        events = [await create_event(client) for _ in range(5)]
        [hanging] = await receiver.wait_for(1)
    await trio.to_thread.run_sync(daemon.kill)
    restarted = DaemonProcess(fresh_database_url, tmp_path, **sections).start()
    try:
        # The dead daemon's lease on the endpoint runs out; then everything goes, in order.
        got = await receiver.wait_for(6, seconds=LEASE_SECONDS + WAIT_SECONDS)
        bodies = [verified(endpoint["secret"], d) for d in got]
        assert got[1].message_id == hanging.message_id
        assert [b["data"]["id"] for b in bodies[1:]] == [e["id"] for e in events]
    finally:
        receiver.release.set()
        assert restarted.stop() == 0, restarted.log()


@pytest.mark.slow
async def test_two_daemons_send_each_change_once_in_order_and_export_it_all(
    fresh_database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    receiver = await receiver_at(nursery)
    sections: dict[str, dict[str, Any]] = {"webhooks": {"allow_private_targets": True}}
    daemons: list[DaemonProcess] = []
    try:
        for _ in range(2):
            daemons.append(DaemonProcess(fresh_database_url, tmp_path, **sections).start())
        async with httpx.AsyncClient(base_url=daemons[0].url, timeout=30) as one, \
                httpx.AsyncClient(base_url=daemons[1].url, timeout=30) as other:
            endpoint = await subscribe(one, receiver, ["registration.confirmed"])
            event = await create_event(one, maxAttendees=20)
            made = []
            for n in range(10):  # one after another, through either daemon in turn
                client = (one, other)[n % 2]
                attendee = await create_attendee(client)
                response = await register(client, event["id"], attendee["id"])
                assert response.status_code == 201, response.text
                made.append(response.json()["id"])
            got = [verified(endpoint["secret"], d) for d in await receiver.wait_for(10)]
            assert [b["data"]["id"] for b in got] == made
            page = await settled(other, endpoint)
            assert [d["status"] for d in page["items"]] == ["delivered"] * 10
            assert len(receiver.received) == 10  # nothing sent twice, by either daemon
            assert len({d.message_id for d in receiver.received}) == 10
            export = await one.get(f"/events/{event['id']}/registrations/export",
                                   params={"format": "ndjson"})
            assert export.status_code == 200, export.text
            exported = [json.loads(line)["id"] for line in export.text.splitlines()]
            assert sorted(exported) == sorted(made)
    finally:
        for daemon in daemons:
            assert daemon.stop() == 0, daemon.log()
