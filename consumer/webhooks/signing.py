"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

Each request carries ``webhook-id`` (the delivery id, the same on every retry),
``webhook-timestamp`` (unix seconds of this attempt) and ``webhook-signature``: one
``v1,<base64 HMAC-SHA256>`` per active secret, space-separated, over
``<id>.<timestamp>.<raw body>``. Secrets are ``whsec_`` + base64 of the key bytes; the
HMAC key is the decoded bytes. Several secrets sign at once while a key is rotated.

:func:`verify` is the receiving side, for Python receivers (and the demo).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Iterable, Mapping

from flowbus.errors import InvalidWebhookSecretError, WebhookSignatureError

__all__ = [
    "HEADER_ID",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "SECRET_PREFIX",
    "TIMESTAMP_TOLERANCE",
    "generate_secret",
    "secret_key",
    "sign",
    "signature_headers",
    "validate_secret",
    "verify",
]

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
#: Receivers refuse timestamps further than this from their clock (seconds).
TIMESTAMP_TOLERANCE = 5 * 60
_MIN_KEY_BYTES = 24
_MAX_KEY_BYTES = 64


def generate_secret() -> str:
    """A new random secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of ``secret``; raises :class:`InvalidWebhookSecretError` if malformed."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidWebhookSecretError(f"must start with '{SECRET_PREFIX}'")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidWebhookSecretError(
            f"the part after '{SECRET_PREFIX}' is not valid base64"
        ) from None
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise InvalidWebhookSecretError(
            f"the key must be {_MIN_KEY_BYTES} to {_MAX_KEY_BYTES} bytes, not {len(key)}"
        )
    return key


def validate_secret(secret: str) -> str:
    """Return ``secret`` unchanged if it is well formed; raise otherwise."""
    secret_key(secret)
    return secret


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``<msg_id>.<timestamp>.<body>``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    secrets: Iterable[str], msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret in ``secrets``."""
    secret_list = list(secrets)
    if not secret_list:
        raise InvalidWebhookSecretError("at least one secret is needed to sign")
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(ts),
        HEADER_SIGNATURE: " ".join(sign(s, msg_id, ts, body) for s in secret_list),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TIMESTAMP_TOLERANCE,
) -> None:
    """Check a received webhook; raise :class:`WebhookSignatureError` saying why it fails.

    ``headers`` lookup is case-insensitive. Passes when any ``v1`` signature matches.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lowered[HEADER_ID]
        ts_text = lowered[HEADER_TIMESTAMP]
        signatures = lowered[HEADER_SIGNATURE]
    except KeyError as exc:
        raise WebhookSignatureError(f"missing header {exc.args[0]}") from None
    try:
        timestamp = int(ts_text)
    except ValueError:
        raise WebhookSignatureError("the timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookSignatureError("the timestamp is outside the tolerance")
    expected = sign(secret, msg_id, timestamp, body).partition(",")[2]
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return
    raise WebhookSignatureError("no signature matches")
