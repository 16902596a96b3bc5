"""Caller numbers outside the call log appear only masked (PIPL): 138****1234.

The call log keeps a keyed hash as well, so repeat callers and callbacks can be matched
without storing the number in clear; the key lives outside the database.
"""

from __future__ import annotations

import hashlib
import hmac


def mask(number: str) -> str:
    """Keep enough to recognise a number on a ticket, never enough to dial it."""
    digits = number.strip()
    if not digits:
        return "anonymous"
    if len(digits) >= 11:
        return f"{digits[:3]}****{digits[-4:]}"
    if len(digits) >= 7:
        return f"{digits[:2]}***{digits[-2:]}"
    return "*" * len(digits)


def caller_hash(number: str, key: bytes) -> str:
    return hmac.new(key, number.strip().encode(), hashlib.sha256).hexdigest()[:32]
