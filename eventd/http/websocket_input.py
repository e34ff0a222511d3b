"""How much a WebSocket client may send: its frames' headers, read ahead of the parser.

eventd's clients send pings, pongs, a close, and now and then a small message
that is ignored. Nothing they send needs more than ``websocket.max_message_bytes``
(4 KiB), and a message must never be held beyond that: not a frame whose header
announces 2^62 bytes, not ten incomplete frames of 15 MiB.

:class:`MessageSizeGuard` follows the frames in the bytes a client sends and
finds the first header that takes a message over the cap: a data frame
announcing more, or a fragment that takes its message's total over it (control
frames, at most 125 bytes by RFC 6455 §5.5, are not part of a message and do
not count). The size is in the header, so the connection can be closed (1009)
before any of that frame's payload is read, let alone held.

Only sizes are judged here. Everything else about a frame — the mask, the
opcode, the reserved bits, UTF-8 — is the parser's (wsproto's) to judge, and
it reads the same bytes, up to and including the header found here: a
violation before or in that header is reported as what it is.

Messages are never compressed: eventd does not negotiate permessage-deflate
(see :mod:`eventd.http.raw_websocket`), so the header's size is the message's.
"""

from __future__ import annotations

_PAYLOAD_LENGTH_MASK = 0x7F
_MASK_BIT = 0x80
_OPCODE_MASK = 0x0F
_CONTINUATION = 0x0
_FIRST_CONTROL_OPCODE = 0x8
_TWO_BYTE_LENGTH = 126
_EIGHT_BYTE_LENGTH = 127
MAX_HEADER_BYTES = 14  # 2, an 8-byte length, a 4-byte mask


class MessageSizeGuard:
    """Follows one connection's frame headers; finds the first one that goes over the cap."""

    __slots__ = ("max_message_bytes", "_header", "_payload_left", "_message_bytes")

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._header = bytearray()  # a header whose bytes are still arriving
        self._payload_left = 0  # of the frame being read
        self._message_bytes = 0  # of the message being read, its fragments summed

    def end_of_oversized_header(self, data: bytes) -> int | None:
        """Where in ``data`` the header of the first frame over the cap ends, if one does.

        ``data`` are the next bytes the client sent. None: every frame in them
        is within the cap (those still arriving are judged when their headers
        are in). Otherwise the parser may read ``data`` up to the returned
        offset, which leaves out all of that frame's payload, and the
        connection is to close: the guard reads nothing after it.
        """
        at, end = 0, len(data)
        while at < end:
            if self._payload_left:
                skipped = min(self._payload_left, end - at)
                self._payload_left -= skipped
                at += skipped
                continue
            header = self._header
            while at < end and len(header) < (size := _header_size(header)):
                taken = min(size - len(header), end - at)
                header += data[at : at + taken]
                at += taken
            if len(header) < _header_size(header):
                return None  # the rest of the header comes in a later read
            opcode = header[0] & _OPCODE_MASK
            length = _payload_length(header)
            header.clear()
            if opcode < _FIRST_CONTROL_OPCODE:
                if opcode == _CONTINUATION:
                    self._message_bytes += length
                else:
                    self._message_bytes = length
                if self._message_bytes > self.max_message_bytes:
                    return at
            self._payload_left = length
        return None


def _header_size(header: bytearray) -> int:
    """The size of the header that begins with ``header`` (2 until its second byte is in)."""
    if len(header) < 2:
        return 2
    length = header[1] & _PAYLOAD_LENGTH_MASK
    extended = 2 if length == _TWO_BYTE_LENGTH else 8 if length == _EIGHT_BYTE_LENGTH else 0
    return 2 + extended + (4 if header[1] & _MASK_BIT else 0)


def _payload_length(header: bytearray) -> int:
    length = header[1] & _PAYLOAD_LENGTH_MASK
    if length == _TWO_BYTE_LENGTH:
        return int.from_bytes(header[2:4], "big")
    if length == _EIGHT_BYTE_LENGTH:
        return int.from_bytes(header[2:10], "big")
    return length
