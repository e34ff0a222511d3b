"""Transports: where a message goes. ``file`` (the default) and ``none``.

A transport is handed the outbox's message and composes it (MIME, calendar
invitation) only if it delivers it: ``none`` composes nothing. It raises
:class:`TransportError` when a message could not be handed over; the mailer
keeps it and tries again later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import trio

from eventd.email.messages import OutboxMessage, compose


class TransportError(Exception):
    """The message was not handed over; try again later."""


class Transport(Protocol):
    name: str

    async def send(self, message: OutboxMessage, sender: str) -> None: ...


class FileTransport:
    """One RFC 5322 ``.eml`` file per message in a directory.

    The file is named after the message's id and written atomically, so a
    message sent again after a crash replaces itself instead of doubling.
    """

    name = "file"

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    async def send(self, message: OutboxMessage, sender: str) -> None:
        data = compose(message, sender).as_bytes()
        await trio.to_thread.run_sync(self._write, data, str(message.id))

    def _write(self, data: bytes, message_id: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            final = self.directory / f"{message_id}.eml"
            partial = self.directory / f".{message_id}.eml.partial"
            with open(partial, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, final)
        except OSError as exc:
            raise TransportError(f"cannot write to {self.directory}: {exc.strerror}") from exc


class NoTransport:
    """``transport = "none"``: messages are marked sent and go nowhere."""

    name = "none"

    async def send(self, message: OutboxMessage, sender: str) -> None:
        return None
