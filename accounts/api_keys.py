"""API key format and hashing, shared by the services that issue keys and the authentication that
checks them. A key reads ``ll_<12 hex prefix>_<48 hex secret>``."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_RE = re.compile(r"^(ll_[0-9a-f]{12})_([0-9a-f]{48})$")
SCOPES = ("ingest", "read", "disputes", "export")


def generate() -> tuple[str, str, str]:
    """Return ``(key, prefix, secret_hash)`` for a new key."""
    prefix = f"ll_{secrets.token_hex(6)}"
    secret = secrets.token_hex(24)
    return f"{prefix}_{secret}", prefix, digest(secret)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split(key: str) -> tuple[str, str] | None:
    match = KEY_RE.match(key)
    return (match.group(1), match.group(2)) if match else None


def matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(digest(secret), secret_hash)
