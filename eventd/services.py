"""What the HTTP face needs from the rest of the daemon, gathered in one object."""

from __future__ import annotations

import dataclasses

from eventd.actors.reads import EventReads
from eventd.actors.supervisor import Supervisor
from eventd.config import Config
from eventd.email.mailer import Mailer
from eventd.realtime.hub import Hub
from eventd.realtime.relay import Relay
from eventd.storage.database import Database
from eventd.storage.redis import Redis
from eventd.storage.writer import Writer


@dataclasses.dataclass(frozen=True)
class Services:
    config: Config
    db: Database
    writer: Writer
    supervisor: Supervisor
    reads: EventReads
    hub: Hub
    mailer: Mailer
    redis: Redis | None = None  # None: not configured
    relay: Relay | None = None
