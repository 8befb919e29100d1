"""Omni's webhook signatures: check the ones Omni sends, and make the same ones for webhooks the bridge sends.

Omni signs an AI-job webhook with two headers: `X-Omni-Signature-Timestamp` (unix seconds)
and `X-Omni-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`, keyed with the job's
`webhookSigningSecret`. Signing the timestamp is what makes a captured request worthless later: a timestamp
outside the tolerance is refused, and `ReplayGuard` refuses an exact copy inside it.

Omni does not state the digest encoding; hex is what it most likely sends (and what the sandbox sends), so
`verify_webhook` accepts hex and, to be safe, base64. Omni may deliver the same event more than once (a retry
has a new timestamp and signature but the same `event_id`): deduplicating deliberate retries is the receiver's
job, by `event_id`, once it has processed an event; `ReplayGuard` only stops copies of one signed request.

No secret ever appears in an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, TypeAlias

from pydantic import SecretStr

from omni_bridge.exceptions import WebhookVerificationError

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ReplayGuard",
    "sign_webhook_payload",
    "verify_webhook",
]

SIGNATURE_HEADER = "X-Omni-Signature"
TIMESTAMP_HEADER = "X-Omni-Signature-Timestamp"
_SCHEME = "sha256="

Secret: TypeAlias = str | bytes | SecretStr


def _key(secret: Secret) -> bytes:
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return raw.encode() if isinstance(raw, str) else raw


def _digest(key: bytes, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).digest()


def sign_webhook_payload(secret: Secret, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers that sign `body` the way Omni signs its webhooks.

    Args:
        secret: the receiver's signing secret (Omni's `webhookSigningSecret`).
        body: the exact bytes that will be sent.
        timestamp: unix seconds to sign with; now if omitted.

    Returns:
        `X-Omni-Signature-Timestamp` and `X-Omni-Signature` (add `Content-Type` yourself).

    Raises:
        ValueError: the secret is empty.
    """
    key = _key(secret)
    if not key:
        raise ValueError("a webhook signing secret is required")
    stamp = str(int(time.time()) if timestamp is None else int(timestamp))
    signature = _SCHEME + _digest(key, stamp, body).hex()
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature}


class ReplayGuard:
    """Remembers the signatures accepted within the tolerance window, so an exact replay is refused.

    Bounded: at most `max_entries` signatures are kept; entries leave when their timestamp falls out of the
    window, and when full the oldest is forgotten first. Safe to share between threads.
    """

    def __init__(self, *, max_entries: int = 10_000) -> None:
        """Build a guard.

        Args:
            max_entries: how many signatures to remember at most.
        """
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature → when it may be forgotten
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def __repr__(self) -> str:
        return f"<ReplayGuard remembered={len(self._seen)} max_entries={self._max_entries}>"

    def check_and_remember(self, signature: str, *, forget_after: float, now: float) -> None:
        """Remember `signature` until `forget_after` (unix seconds).

        Raises:
            WebhookVerificationError: the signature was already accepted and has not been forgotten.
        """
        with self._lock:
            self._forget_expired(now)
            expires = self._seen.get(signature)
            if expires is not None and expires >= now:
                raise WebhookVerificationError("webhook replayed: this exact signed request was already accepted")
            self._seen[signature] = forget_after
            self._seen.move_to_end(signature)
            while len(self._seen) > self._max_entries:
                self._seen.popitem(last=False)

    def _forget_expired(self, now: float) -> None:
        # Insertion order follows delivery time closely enough; anything stale behind a fresh entry goes later.
        while self._seen:
            signature, expires = next(iter(self._seen.items()))
            if expires >= now:
                return
            del self._seen[signature]


def verify_webhook(
    secret: Secret,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: float = 300,
    now: float | None = None,
    replay_guard: ReplayGuard | None = None,
) -> dict[str, Any]:
    """Check an Omni webhook's signature and freshness, and return its JSON payload.

    Args:
        secret: the `webhookSigningSecret` the job was created with.
        headers: the request's headers (any case; a Starlette or `httpx2` `Headers` works).
        body: the raw request body, exactly as received (parse it only after this returns).
        tolerance_seconds: how far the signed timestamp may be from `now`, either way.
        now: unix seconds to check against; the current time if omitted.
        replay_guard: also refuse an exact copy of a request already accepted inside the window.

    Returns:
        The payload, e.g. `{"event_id", "jobId", "status", "result_summary", "metadata", "completed_at"}`.

    Raises:
        WebhookVerificationError: a header is missing or malformed, the signature does not match, the timestamp
            is outside the tolerance, the request is a replay, or the body is not a JSON object.
    """
    key = _key(secret)
    if not key:
        raise WebhookVerificationError("no webhook signing secret is configured")
    lowered = {name.lower(): value for name, value in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "").strip()
    signatures = lowered.get(SIGNATURE_HEADER.lower(), "").strip()
    if not stamp or not signatures:
        raise WebhookVerificationError(f"webhook is not signed: {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are needed")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise WebhookVerificationError(f"webhook {TIMESTAMP_HEADER} must be unix seconds")
    expected = _digest(key, stamp, body)
    candidates = [s.strip() for s in signatures.split(",") if s.strip()]
    if not all(c.startswith(_SCHEME) for c in candidates):
        raise WebhookVerificationError(f"webhook {SIGNATURE_HEADER} must look like 'sha256=<hex digest>'")
    if not any(_same_digest(c.removeprefix(_SCHEME), expected) for c in candidates):
        raise WebhookVerificationError("webhook signature does not match the body (wrong secret, or altered body)")
    current = time.time() if now is None else now
    skew = current - int(stamp)
    if abs(skew) > tolerance_seconds:
        raise WebhookVerificationError(
            f"webhook timestamp is {abs(skew):.0f}s {'old' if skew > 0 else 'in the future'} "
            f"(tolerance {tolerance_seconds:g}s): a replay, or a clock out of sync"
        )
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookVerificationError("webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("webhook body is not a JSON object")
    if replay_guard is not None:
        replay_guard.check_and_remember(expected.hex(), forget_after=int(stamp) + tolerance_seconds, now=current)
    return payload


def _same_digest(given: str, expected: bytes) -> bool:
    """Constant-time comparison against the hex (any case) or base64 form of the expected digest."""
    given_bytes = given.encode("ascii", "replace")
    hex_match = hmac.compare_digest(given_bytes.lower(), expected.hex().encode())
    b64_match = hmac.compare_digest(given_bytes, base64.b64encode(expected))
    return hex_match or b64_match
