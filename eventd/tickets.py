"""Tickets: compact JWS signed with the deployment's Ed25519 key, verifiable offline.

A ticket is a JWS Compact Serialization (RFC 7515) with ``"alg": "EdDSA"``
(RFC 8037) and the key's ``kid`` (its RFC 7638 thumbprint) in the protected
header; its claims are ``sub`` (the registration's id), ``eid`` (the event's
id), ``name`` (the attendee's) and ``iat`` (when the registration was
confirmed, in seconds). Ed25519 signatures are deterministic, so a
registration's ticket is the same string every time it is asked for. Any
JOSE library verifies it against :meth:`TicketKey.jwks`
(``GET /.well-known/jwks.json``); :meth:`TicketKey.verify` is the daemon's own
check at the door.

The key lives in one file, ``tickets.key_file``, PEM (PKCS #8): made on first
start and read by every daemon of the deployment afterwards. It is created
with mode 0600 from its first byte (a temporary file beside it), written
whole, and then linked into place: a link never replaces a file, so of two
daemons starting together on a fresh deployment the first key in place is the
one both use. A file that cannot be read or is not an Ed25519 key stops the
daemon with :class:`TicketKeyError`, naming the file. The key itself is never
logged, nor put in any message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import re
import stat
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from eventd.config import ConfigError
from eventd.errors import TicketNotValid

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
# A ticket longer than this is no ticket of ours (ours are ~330 characters with a
# 200-character name); it is refused before anything is decoded.
MAX_TICKET_CHARS = 2048
_SIGNATURE_BYTES = 64
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class TicketKeyError(ConfigError):
    """The key file cannot be used; the message names it (never the key)."""


class Ticket(NamedTuple):
    """A ticket's claims."""

    registration_id: uuid.UUID  # sub
    event_id: uuid.UUID  # eid
    name: str  # the attendee's
    issued_at: int  # iat: seconds since the epoch


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    """The inverse of :func:`b64url`; only the canonical, unpadded form is taken."""
    if len(text) % 4 == 1 or _BASE64URL.fullmatch(text) is None:
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(data) != text:  # stray bits in the last character: another spelling
        raise ValueError("not canonical base64url")
    return data


class TicketKey:
    """The deployment's ticket key: signs tickets, verifies them, publishes its JWK."""

    __slots__ = ("_private", "_public", "_x", "kid", "_header")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self._public: Ed25519PublicKey = private.public_key()
        self._x = b64url(self._public.public_bytes(Encoding.Raw, PublicFormat.Raw))
        # RFC 7638: the SHA-256 of the required members, in lexicographic order, no spaces.
        thumbprint = orjson.dumps({"crv": "Ed25519", "kty": "OKP", "x": self._x})
        self.kid = b64url(hashlib.sha256(thumbprint).digest())
        self._header = b64url(orjson.dumps({"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}))

    def __repr__(self) -> str:
        return f"TicketKey(kid={self.kid!r})"  # the public part only

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK (RFC 8037 §2)."""
        return {"kty": "OKP", "crv": "Ed25519", "x": self._x, "kid": self.kid,
                "alg": ALGORITHM, "use": "sig"}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWK Set a scanner verifies tickets with (RFC 7517 §5)."""
        return {"keys": [self.jwk()]}

    def sign(self, ticket: Ticket) -> str:
        """The ticket as a JWS Compact Serialization."""
        claims = {
            "sub": str(ticket.registration_id),
            "eid": str(ticket.event_id),
            "name": ticket.name,
            "iat": ticket.issued_at,
        }
        signing_input = f"{self._header}.{b64url(orjson.dumps(claims))}"
        signature = self._private.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{b64url(signature)}"

    def verify(self, token: str) -> Ticket:
        """The claims of a ticket this key signed; :class:`TicketNotValid` for anything else."""
        if len(token) > MAX_TICKET_CHARS:
            raise TicketNotValid("This is not a ticket: it is too long.")
        parts = token.split(".")
        if len(parts) != 3:
            raise TicketNotValid("This is not a ticket: a ticket is a compact JWS (three parts).")
        header_part, claims_part, signature_part = parts
        try:
            header = orjson.loads(_unb64url(header_part))
            signature = _unb64url(signature_part)
            claims_bytes = _unb64url(claims_part)
        except (ValueError, binascii.Error, orjson.JSONDecodeError):
            raise TicketNotValid(
                "This is not a ticket: its parts are not base64url JSON."
            ) from None
        if not isinstance(header, dict) or header.get("alg") != ALGORITHM or "crit" in header:
            raise TicketNotValid(f'This is not a ticket: its header must say "alg": "{ALGORITHM}".')
        if header.get("kid", self.kid) != self.kid:
            raise TicketNotValid("The ticket was signed with another key than this deployment's.")
        if len(signature) != _SIGNATURE_BYTES:
            raise TicketNotValid("The ticket's signature does not verify.")
        try:
            self._public.verify(signature, f"{header_part}.{claims_part}".encode("ascii"))
        except InvalidSignature:
            raise TicketNotValid("The ticket's signature does not verify.") from None
        return _claims(claims_bytes)


def _claims(data: bytes) -> Ticket:
    """The claims of a signed ticket; we signed them, but say so clearly if they are odd."""
    try:
        claims: Any = orjson.loads(data)
        name, issued_at = claims["name"], claims["iat"]
        if not isinstance(name, str) or type(issued_at) is not int:
            raise TypeError
        return Ticket(uuid.UUID(claims["sub"]), uuid.UUID(claims["eid"]), name, issued_at)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise TicketNotValid("The ticket's claims are not those of an eventd ticket.") from None


def issued_at(moment: datetime) -> int:
    """``iat``: whole seconds since the epoch."""
    return int(moment.timestamp())


# --- the key file ----------------------------------------------------------------


def load_or_create_key(path: str | os.PathLike[str]) -> TicketKey:
    """The key in ``path``, made there first if there is none."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return _create(file)
    except OSError as exc:
        raise TicketKeyError(
            f"tickets.key_file: {file} cannot be read ({exc.strerror or exc})"
        ) from None
    _warn_if_readable_by_others(file)
    return TicketKey(_parse(file, data))


def _parse(file: Path, data: bytes) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):  # not PEM, encrypted, or not a key: the reason may quote it
        raise TicketKeyError(
            f"tickets.key_file: {file} does not hold an unencrypted Ed25519 private key"
            " in PEM (PKCS #8); move it away to have a new key made (every ticket issued"
            " so far then stops verifying)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TicketKeyError(
            f"tickets.key_file: {file} holds a {type(key).__name__.removeprefix('_')},"
            " not an Ed25519 private key"
        )
    return key


def _create(file: Path) -> TicketKey:
    """Make a key and put it in ``file``, unless another daemon put one there first."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp makes the file with mode 0600: no moment where another user may read it.
        fd, temporary = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # theirs came first: theirs is used
                os.link(temporary, file)
        finally:
            os.unlink(temporary)
        _sync_directory(file.parent)
    except OSError as exc:
        raise TicketKeyError(
            f"tickets.key_file: {file} cannot be created ({exc.strerror or exc})"
        ) from None
    key = load_or_create_key(file)
    log.info("ticket key made in %s (kid %s)", file, key.kid)
    return key


def _sync_directory(directory: Path) -> None:
    """Make the new name durable, where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _warn_if_readable_by_others(file: Path) -> None:
    with contextlib.suppress(OSError):
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode & 0o077:
            log.warning("tickets.key_file %s has mode %04o: anyone who can read it can forge"
                        " tickets; chmod 600 it", file, mode)
