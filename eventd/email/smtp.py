"""The SMTP transport: aiosmtplib, bridged into trio.

aiosmtplib is an asyncio library; this adapter is the only module that
touches it, with an asyncio loop of its own opened by :func:`open_smtp`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import trio_asyncio
from trio_asyncio import open_loop

from eventd.config import EmailConfig
from eventd.email.messages import OutboxMessage, compose
from eventd.email.transports import TransportError

# Below the mailer's lease, so a send never outlives its claim.
SEND_TIMEOUT_SECONDS = 10.0


class SmtpTransport:
    name = "smtp"

    def __init__(self, config: EmailConfig, loop: Any) -> None:
        self._config = config
        self._loop = loop

    async def send(self, message: OutboxMessage, sender: str) -> None:
        c = self._config
        try:
            await trio_asyncio.aio_as_trio(aiosmtplib.send, loop=self._loop)(
                compose(message, sender),
                hostname=c.host,
                port=c.port,
                username=c.username or None,
                password=c.password or None,
                use_tls=c.security == "tls",
                start_tls=c.security == "starttls",
                timeout=SEND_TIMEOUT_SECONDS,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransportError(f"SMTP {c.host}:{c.port}: {exc}") from exc


@contextlib.asynccontextmanager
async def open_smtp(config: EmailConfig) -> AsyncIterator[SmtpTransport]:
    async with open_loop() as loop:
        yield SmtpTransport(config, loop)
