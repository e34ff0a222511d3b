"""eventd.tickets: the key file, and tickets any JOSE library verifies.

The key is made once (mode 0600 from its first byte, never replacing a key
another daemon put there first), read again on every start, and a file that
is no key stops the daemon naming the file. Tickets are checked with PyJWT —
not our code — against the JWK Set we publish, and our own check at the door
refuses whatever is not exactly a ticket of this key. The QR code is segno's
for exactly the ticket's string.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import threading
import uuid
from pathlib import Path

import jwt
import orjson
import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from eventd.errors import TicketNotValid
from eventd.http.tickets import qr_svg
from eventd.tickets import (
    Ticket,
    TicketKey,
    TicketKeyError,
    b64url,
    load_or_create_key,
)

TICKET = Ticket(uuid.uuid4(), uuid.uuid4(), "Zoë O'Brien", 1_900_000_000)


def _verify_with_pyjwt(token: str, key: TicketKey) -> dict[str, object]:
    """The ticket's claims as PyJWT reads them, with the key from our JWK Set."""
    keys = jwt.PyJWKSet.from_dict(orjson.loads(orjson.dumps(key.jwks())))
    [jwk] = keys.keys
    claims: dict[str, object] = jwt.decode(
        token, jwk, algorithms=["EdDSA"], options={"verify_iat": False}
    )
    return claims


# --- the key file -------------------------------------------------------------------


def test_the_key_is_made_on_first_start_with_mode_0600(tmp_path: Path):
    path = tmp_path / "var" / "ticket-key"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [p.name for p in path.parent.iterdir()] == ["ticket-key"]  # no temporary left
    assert key.kid in repr(key)


def test_the_key_is_made_0600_whatever_the_umask(tmp_path: Path):
    old = os.umask(0)
    try:
        load_or_create_key(tmp_path / "key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "key").stat().st_mode) == 0o600


def test_the_next_start_reads_the_same_key(tmp_path: Path):
    first = load_or_create_key(tmp_path / "key")
    token = first.sign(TICKET)
    again = load_or_create_key(tmp_path / "key")
    assert again.jwks() == first.jwks()
    assert again.verify(token) == TICKET  # a ticket from before the restart still verifies


def test_daemons_starting_together_end_with_one_key(tmp_path: Path):
    path = tmp_path / "key"
    keys: list[TicketKey] = []
    start = threading.Barrier(8)

    def start_one() -> None:
        start.wait()
        keys.append(load_or_create_key(path))

    threads = [threading.Thread(target=start_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8
    assert {key.kid for key in keys} == {load_or_create_key(path).kid}


_ENCRYPTED = Ed25519PrivateKey.generate().private_bytes(
    Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"passphrase")
)
_PLAIN = Ed25519PrivateKey.generate().private_bytes(
    Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a key at all\n", _ENCRYPTED, _PLAIN[:60], _PLAIN.replace(b"M", b"m", 3)],
    ids=["empty", "text", "encrypted", "cut", "damaged"],
)
def test_a_file_that_is_no_key_stops_the_start_naming_it(tmp_path: Path, content: bytes):
    path = tmp_path / "ticket-key"
    path.write_bytes(content)
    with pytest.raises(TicketKeyError) as caught:
        load_or_create_key(path)
    assert str(path) in str(caught.value)
    assert "tickets.key_file" in str(caught.value)
    assert "does not hold an unencrypted Ed25519 private key" in str(caught.value)
    assert path.read_bytes() == content  # left for the operator to look at


def test_a_key_of_another_kind_is_refused(tmp_path: Path):
    path = tmp_path / "ticket-key"
    path.write_bytes(
        Ed448PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    with pytest.raises(TicketKeyError, match="not an Ed25519 private key") as caught:
        load_or_create_key(path)
    assert str(path) in str(caught.value)


def test_a_directory_in_the_way_stops_the_start_naming_it(tmp_path: Path):
    path = tmp_path / "ticket-key"
    path.mkdir()
    with pytest.raises(TicketKeyError, match="cannot be read") as caught:
        load_or_create_key(path)
    assert str(path) in str(caught.value)


def test_the_key_is_never_in_an_error_or_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level("DEBUG")
    path = tmp_path / "ticket-key"
    load_or_create_key(path)
    pem = path.read_bytes()
    secret_line = pem.splitlines()[1].decode()
    path.write_bytes(pem[:-40])  # damaged
    with pytest.raises(TicketKeyError) as caught:
        load_or_create_key(path)
    assert secret_line[:20] not in str(caught.value)
    assert secret_line[:20] not in caplog.text


# --- tickets ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> TicketKey:
    return load_or_create_key(tmp_path_factory.mktemp("key") / "ticket-key")


def test_the_jwk_set_is_an_ed25519_key_named_by_its_thumbprint(key: TicketKey):
    [jwk] = key.jwks()["keys"]
    assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert len(base64.urlsafe_b64decode(jwk["x"] + "=")) == 32
    # RFC 7638 §3, by hand: the required members, sorted, no white space.
    members = f'{{"crv":"Ed25519","kty":"OKP","x":"{jwk["x"]}"}}'
    assert jwk["kid"] == b64url(hashlib.sha256(members.encode()).digest())


def test_a_ticket_verifies_with_an_independent_library(key: TicketKey):
    token = key.sign(TICKET)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": key.kid, "typ": "JWT"}
    assert header["kid"] == jwt.PyJWKSet.from_dict(key.jwks())[key.kid].key_id
    claims = _verify_with_pyjwt(token, key)
    assert claims == {
        "sub": str(TICKET.registration_id),
        "eid": str(TICKET.event_id),
        "name": "Zoë O'Brien",
        "iat": 1_900_000_000,
    }
    assert key.sign(TICKET) == token  # Ed25519 is deterministic: one ticket per registration


def test_our_check_reads_back_what_was_signed(key: TicketKey):
    assert key.verify(key.sign(TICKET)) == TICKET


def _tampered(token: str) -> list[str]:
    header, claims, signature = token.split(".")
    other_claims = b64url(orjson.dumps({
        "sub": str(uuid.uuid4()), "eid": str(TICKET.event_id), "name": "Mallory", "iat": 1,
    }))
    flipped = bytearray(base64.urlsafe_b64decode(signature + "=="))
    flipped[0] ^= 1
    none_header = b64url(orjson.dumps({"alg": "none"}))
    hs_header = b64url(orjson.dumps({"alg": "HS256", "kid": "x"}))
    return [
        f"{header}.{other_claims}.{signature}",  # claims swapped under the same signature
        f"{header}.{claims}.{b64url(bytes(flipped))}",  # one bit of the signature
        f"{header}.{claims}.",  # no signature
        f"{none_header}.{claims}.",  # alg none
        f"{hs_header}.{claims}.{signature}",
        f"{header}.{claims}.{signature}=",  # padded: not the compact form
        f"{header}.{claims}.{signature[:-1]}",  # cut short
        f"{header}.{claims}",
        f"{header}.{claims}.{signature}.{signature}",
        "not a ticket",
        "",
        "a.b.c",
        "é.é.é",
        token + "A" * 3000,
    ]


def test_a_tampered_ticket_is_refused_by_both(key: TicketKey):
    for bad in _tampered(key.sign(TICKET)):
        with pytest.raises(TicketNotValid):
            key.verify(bad)
        with pytest.raises(jwt.PyJWTError):
            _verify_with_pyjwt(bad, key)


def test_another_deployments_ticket_is_refused(key: TicketKey, tmp_path: Path):
    other = load_or_create_key(tmp_path / "other-key")
    token = other.sign(TICKET)
    with pytest.raises(TicketNotValid, match="another key"):
        key.verify(token)
    # Even when it claims our kid, the signature gives it away.
    header = b64url(orjson.dumps({"alg": "EdDSA", "kid": key.kid, "typ": "JWT"}))
    forged = ".".join([header, *token.split(".")[1:]])
    with pytest.raises(TicketNotValid, match="signature"):
        key.verify(forged)
    with pytest.raises(jwt.InvalidSignatureError):
        _verify_with_pyjwt(forged, key)


# --- the QR code ------------------------------------------------------------------


def test_the_qr_code_holds_exactly_the_ticket(key: TicketKey):
    token = key.sign(TICKET)
    svg = qr_svg(token)
    assert svg.startswith(b"<?xml")
    assert b"<svg" in svg
    expected = io.BytesIO()
    segno.make_qr(token).save(expected, kind="svg", scale=4, title="Ticket QR code")
    assert svg == expected.getvalue()
    # ...and not of anything near it: one character more is another code.
    assert qr_svg(token + "x") != svg
    assert segno.make_qr(token).designator.endswith(("-L", "-M", "-Q", "-H"))
