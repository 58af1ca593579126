"""Standard Webhooks signing: the published test vector, rotation, verification failures."""

from __future__ import annotations

import base64

import pytest

from flowbus.consumer.webhooks.signing import (
    generate_secret,
    secret_key,
    sign,
    signature_headers,
    verify,
)
from flowbus.errors import InvalidWebhookSecretError, WebhookSignatureError

# The test vector of the Standard Webhooks reference libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_matches_the_published_test_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_headers_carry_id_timestamp_and_signature() -> None:
    headers = signature_headers([VECTOR_SECRET], VECTOR_ID, VECTOR_BODY, VECTOR_TIMESTAMP)
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }


def test_rotation_signs_with_every_secret_space_separated() -> None:
    new = generate_secret()
    headers = signature_headers([new, VECTOR_SECRET], VECTOR_ID, VECTOR_BODY, VECTOR_TIMESTAMP)
    signatures = headers["webhook-signature"].split(" ")
    assert signatures[1] == VECTOR_SIGNATURE
    assert signatures[0] == sign(new, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    # a receiver knowing either secret accepts the request
    for secret in (new, VECTOR_SECRET):
        verify(secret, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_generated_secrets_are_prefixed_random_32_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(secret_key(first)) == 32


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
        ("whsec_not base64!", "not valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64 bytes"),
    ],
)
def test_malformed_secrets_are_rejected(secret: str, reason: str) -> None:
    with pytest.raises(InvalidWebhookSecretError, match=reason):
        secret_key(secret)


def test_no_secret_cannot_sign() -> None:
    with pytest.raises(InvalidWebhookSecretError):
        signature_headers([], VECTOR_ID, VECTOR_BODY)


def _vector_headers(**overrides: str) -> dict[str, str]:
    headers = {
        "Webhook-Id": VECTOR_ID,
        "Webhook-Timestamp": str(VECTOR_TIMESTAMP),
        "Webhook-Signature": VECTOR_SIGNATURE,
    }
    headers.update(overrides)
    return headers


def test_verify_accepts_the_vector_case_insensitively() -> None:
    verify(VECTOR_SECRET, _vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP + 10)


@pytest.mark.parametrize(
    ("headers", "body", "now", "reason"),
    [
        (_vector_headers(), b'{"test": 2432232315}', VECTOR_TIMESTAMP, "no signature matches"),
        (
            _vector_headers(**{"Webhook-Id": "msg_other"}),
            VECTOR_BODY,
            VECTOR_TIMESTAMP,
            "no signature matches",
        ),
        (_vector_headers(), VECTOR_BODY, VECTOR_TIMESTAMP + 301, "outside the tolerance"),
        (_vector_headers(), VECTOR_BODY, VECTOR_TIMESTAMP - 301, "outside the tolerance"),
        (
            _vector_headers(**{"Webhook-Timestamp": "yesterday"}),
            VECTOR_BODY,
            VECTOR_TIMESTAMP,
            "not an integer",
        ),
        (
            _vector_headers(**{"Webhook-Signature": "v2," + VECTOR_SIGNATURE[3:]}),
            VECTOR_BODY,
            VECTOR_TIMESTAMP,
            "no signature matches",
        ),
        (
            {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP)},
            VECTOR_BODY,
            VECTOR_TIMESTAMP,
            "missing header",
        ),
    ],
    ids=["body", "id", "late", "early", "timestamp", "version", "missing"],
)
def test_verify_rejects_tampering_and_stale_requests(
    headers: dict[str, str], body: bytes, now: float, reason: str
) -> None:
    with pytest.raises(WebhookSignatureError, match=reason):
        verify(VECTOR_SECRET, headers, body, now=now)
