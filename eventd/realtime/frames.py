"""RFC 6455 framing of what the server sends: final, unmasked text frames.

A server's frames are never masked (RFC 6455 §5.1), so one frame's bytes are
the same on every connection: a change is framed once and written to each
client as it is.
"""

from __future__ import annotations

# The first byte of a final text frame: FIN set, opcode 0x1 (RFC 6455 §5.2).
_FINAL_TEXT = 0x81
# Payload lengths up to this fit in the 7-bit field; past it, 126 or 127 announce 2 or 8 bytes.
_MAX_SHORT_LENGTH_BYTES = 125


def text_frame(text: str) -> bytes:
    """One final, unmasked WebSocket text frame carrying ``text`` (RFC 6455 §5.2)."""
    payload = text.encode()
    length = len(payload)
    if length <= _MAX_SHORT_LENGTH_BYTES:
        header = bytes((_FINAL_TEXT, length))
    elif length < 1 << 16:
        header = bytes((_FINAL_TEXT, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((_FINAL_TEXT, 127)) + length.to_bytes(8, "big")
    return header + payload
