"""RFC 6455 server framing, read back by wsproto's client, which checks every frame."""

from __future__ import annotations

import pytest

from eventd.realtime.frames import text_frame
from tests.support import client_messages


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
def test_text_frame_lengths_at_every_boundary(length: int) -> None:
    text = "é" * (length // 2) + "x" * (length % 2)  # multi-byte: the length is in bytes
    assert client_messages(text_frame(text)) == [text]


def test_text_frames_joined_read_as_separate_messages() -> None:
    texts = ["", "x" * 126, "é" * 40_000, "last"]
    assert client_messages(b"".join(text_frame(text) for text in texts)) == texts
