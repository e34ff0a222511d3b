"""Webhooks: signed messages about every change, to the endpoints that asked for them.

The rows are written by the database in the change's own transaction
(``sql/functions/eventd_webhook_fanout.sql``), beside the emails; the
:mod:`~eventd.webhooks.deliverer` sends them, and
:mod:`~eventd.webhooks.targets` keeps them away from addresses they must not
reach.
"""

from __future__ import annotations

import typing
from typing import Literal

WebhookType = Literal[
    "event.created",
    "event.updated",
    "event.deleted",
    "registration.held",
    "registration.offered",
    "registration.confirmed",
    "registration.waitlisted",
    "registration.cancelled",
    "registration.expired",
    "registration.checked_in",
]
#: Every type an endpoint may subscribe to; ``*`` subscribes to all of them.
TYPES: tuple[str, ...] = typing.get_args(WebhookType)
EVERY_TYPE = "*"
