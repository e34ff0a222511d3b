"""Admission tokens (``eventd.http.admission``): made, hashed, read from the header, compared.

The token is read back with RFC 4648's URL-safe base64 decoder, and its hash
is SHA-256 of its text, as ``eventd_register_run`` looks it up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import pytest

from eventd import errors
from eventd.errors import gate_refusal
from eventd.http.admission import (
    admission_token_hash,
    is_token,
    new_token,
    token_hash,
    token_matches,
)

EVENT = uuid.uuid4()


def test_a_token_is_256_random_bits_in_url_safe_base64():
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in list(tokens)[:50]:
        assert len(token) == 43
        assert is_token(token)
        assert len(base64.urlsafe_b64decode(token + "=")) == 32


def test_only_the_hash_is_kept_and_it_is_sha_256():
    token = new_token()
    assert token_hash(token) == hashlib.new("sha256", token.encode()).digest()
    assert token_hash(token) != hmac.digest(b"", token.encode(), "sha256")  # not an HMAC
    assert token_matches(token, token_hash(token))
    assert not token_matches(new_token(), token_hash(token))
    assert not token_matches(token + "x", token_hash(token))
    assert not token_matches("", token_hash(token))


def test_the_header_is_read_as_a_token_or_refused_without_echo():
    token = new_token()
    assert admission_token_hash([], EVENT) is None
    assert admission_token_hash([token], EVENT) == token_hash(token)
    assert admission_token_hash([f"  {token} "], EVENT) == token_hash(token)
    for sent in (["short"], [token + "x"], [token[:-1] + "="], [token, token], ["é" * 43], [""]):
        with pytest.raises(errors.AdmissionRequired) as refused:
            admission_token_hash(sent, EVENT)
        assert refused.value.code == "admission_required"
        assert token not in refused.value.detail


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        ("sales_not_open", errors.SalesNotOpen, "sales_not_open"),
        ("admission_required", errors.AdmissionRequired, "admission_required"),
        ("admission_used", errors.AdmissionUsed, "admission_used"),
        ("admission_expired", errors.AdmissionExpired, "admission_expired"),
    ],
)
def test_each_gate_answer_is_its_error(answer: str, error: type, code: str):
    refusal = gate_refusal(answer, EVENT)
    assert isinstance(refusal, error)
    assert refusal.code == code


def test_ok_passes_and_anything_else_is_a_bug():
    assert gate_refusal("ok", EVENT) is None
    with pytest.raises(ValueError, match="not a gate's answer"):
        gate_refusal("event_full", EVENT)
