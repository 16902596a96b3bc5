"""Credentials of the units and partner platforms that use the tickets API (`hotline api-keys …`).

One file per key in the keys directory ($HOTLINE_API_KEYS, else $HOTLINE_STATE/api-keys): the directory
0700, each file 0600 and created so from its first byte, like the host's other secrets (ivr.site.secrets).
A key is bound to one unit (the `unit` its tickets carry): whoever signs with it sees and moves that unit's
tickets only. A partner platform's key may name a webhook, to which the controller pushes the status
changes of those tickets (ivr.ticketing.api). The controller reads the directory on each request, so an
added or removed key counts at once, without a restart.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import structlog

log = structlog.get_logger("ivr.ticketing")

KEY_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
KINDS = ("unit", "partner")


def keys_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the keys are: $HOTLINE_API_KEYS, else $HOTLINE_STATE/api-keys (var/api-keys)."""
    env = os.environ if env is None else env
    return Path(env.get("HOTLINE_API_KEYS") or Path(env.get("HOTLINE_STATE") or "var") / "api-keys")


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    kind: str  # "unit" or "partner"
    unit: str  # the tickets it may see and move
    secret: str = field(repr=False)  # HMAC-SHA256 key (as its UTF-8 bytes); never logged
    webhook: str = ""  # a partner's status-push URL ("" none)
    created_at: float = 0.0

    @property
    def actor(self) -> str:
        """How its actions appear in a ticket's events."""
        return f"{self.kind}:{self.key_id}"


class KeyStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key_id: str) -> Path:
        return self.directory / f"{key_id}.json"

    def add(self, key_id: str, *, unit: str, kind: str = "unit", webhook: str = "", now: float | None = None) -> ApiKey:
        """A new key with a fresh secret; ValueError naming the field if something is wrong or it exists."""
        if not KEY_ID_RE.fullmatch(key_id):
            raise ValueError(
                f"key id {key_id!r}: 1-32 lowercase letters, digits or '-', starting with one of the first two"
            )
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: one of {', '.join(KINDS)}")
        if not unit.strip():
            raise ValueError("unit: a key needs the unit whose tickets it moves")
        if webhook:
            parts = urlsplit(webhook)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"webhook {webhook!r}: not an http(s) URL")
        key = ApiKey(key_id, kind, unit.strip(), secrets.token_hex(32), webhook, time.time() if now is None else now)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(self._path(key_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ValueError(f"key id {key_id!r} exists already (remove it first to issue a new secret)") from None
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(key), out, ensure_ascii=False)
            out.write("\n")
        log.info("api_key_added", key=key_id, kind=kind, unit=key.unit, webhook=bool(webhook))
        return key

    def get(self, key_id: str) -> ApiKey | None:
        if not KEY_ID_RE.fullmatch(key_id):
            return None
        try:
            data = json.loads(self._path(key_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("api_key_unreadable", key=key_id, error=type(exc).__name__)
            return None
        return ApiKey(**data)

    def all(self) -> list[ApiKey]:
        if not self.directory.is_dir():
            return []
        found = (self.get(p.stem) for p in sorted(self.directory.glob("*.json")))
        return [k for k in found if k is not None]

    def remove(self, key_id: str) -> bool:
        if not KEY_ID_RE.fullmatch(key_id):
            return False
        try:
            self._path(key_id).unlink()
        except FileNotFoundError:
            return False
        log.info("api_key_removed", key=key_id)
        return True
