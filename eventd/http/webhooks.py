"""/webhooks: endpoints that receive signed messages about every change (admin routes).

- ``POST /webhooks`` ``{"url", "types", "description"}`` — ``201`` with the
  endpoint and its ``secret`` (``whsec_…``), shown this once.
- ``GET /webhooks``, ``GET /webhooks/{id}`` — without the secret.
- ``PATCH /webhooks/{id}`` — any of ``url``, ``types``, ``description``,
  ``enabled`` (enabling an endpoint a ``410`` disabled resumes its messages).
- ``DELETE /webhooks/{id}`` — ``204``; its deliveries go with it.
- ``GET /webhooks/{id}/deliveries`` — a page of its messages, newest first.

A URL is checked when it is set (:mod:`eventd.webhooks.targets`): a refused
one is ``400 validation_failed`` naming ``url`` and saying why.
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from eventd.errors import FieldError, NotFound, ValidationFailed
from eventd.http.context import (
    admin_route,
    json_response,
    no_content,
    parse_id,
    read_body,
    services,
)
from eventd.http.idempotency import idempotent
from eventd.http.schemas import Query, WebhookCreate, WebhookPatch
from eventd.storage import webhooks
from eventd.webhooks import targets

blueprint = Blueprint("webhooks", __name__)


async def _check_url(url: str) -> None:
    try:
        await targets.check(url, allow_private=services().config.webhooks.allow_private_targets)
    except targets.TargetRefused as exc:
        raise ValidationFailed([FieldError("url", str(exc))]) from None


@blueprint.post("/webhooks")
@admin_route
@idempotent
async def create_webhook() -> Response:
    body = read_body(WebhookCreate)
    await _check_url(body.url)
    created: webhooks.CreatedEndpoint = await services().writer.submit(
        webhooks.CreateEndpoint(body.url, list(dict.fromkeys(body.types)), body.description)
    )
    return json_response(created.to_json(), 201, location=f"/webhooks/{created.endpoint.id}")


@blueprint.get("/webhooks")
@admin_route
async def list_webhooks() -> Response:
    q = Query(request.args, {"page", "limit"})
    page, limit = q.page()
    q.check()
    found = await webhooks.list_endpoints(services().db, page, limit)
    return json_response({"items": [e.to_json() for e in found.items], "total": found.total,
                          "page": page, "limit": limit})


@blueprint.get("/webhooks/<webhook_id>")
@admin_route
async def get_webhook(webhook_id: str) -> Response:
    wid = parse_id(webhook_id, "Webhook")
    endpoint = await webhooks.get_endpoint(services().db, wid)
    if endpoint is None:
        raise NotFound(f"Webhook {wid} does not exist.")
    return json_response(endpoint.to_json())


@blueprint.patch("/webhooks/<webhook_id>")
@admin_route
async def update_webhook(webhook_id: str) -> Response:
    wid = parse_id(webhook_id, "Webhook")
    changes = read_body(WebhookPatch).changes()
    if "url" in changes:
        await _check_url(changes["url"])
    endpoint: webhooks.Endpoint = await services().writer.submit(
        webhooks.UpdateEndpoint(wid, changes)
    )
    return json_response(endpoint.to_json())


@blueprint.delete("/webhooks/<webhook_id>")
@admin_route
async def delete_webhook(webhook_id: str) -> Response:
    await services().writer.submit(webhooks.DeleteEndpoint(parse_id(webhook_id, "Webhook")))
    return no_content()


@blueprint.get("/webhooks/<webhook_id>/deliveries")
@admin_route
async def list_deliveries(webhook_id: str) -> Response:
    q = Query(request.args, {"page", "limit"})
    page, limit = q.page()
    q.check()
    wid = parse_id(webhook_id, "Webhook")
    found = await webhooks.list_deliveries(services().db, wid, page, limit)
    if found is None:
        raise NotFound(f"Webhook {wid} does not exist.")
    return json_response({"items": [d.to_json() for d in found.items], "total": found.total,
                          "page": page, "limit": limit})
