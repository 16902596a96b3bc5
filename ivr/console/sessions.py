"""Server-side console sessions: a random id in an HttpOnly, SameSite=Strict cookie; everything else
(who, role, seat, CSRF token, expiry) stays in the controller's memory, so a restart signs everyone out.

A session ends after IDLE_SECONDS without a request or MAX_SECONDS after login, whichever is first.
Every state-changing request carries the session's CSRF token (form field `csrf` or header
X-CSRF-Token), compared in constant time: another site's page cannot post on an operator's behalf.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ivr.console.accounts import Account

COOKIE = "hotline_console"
IDLE_SECONDS = 30 * 60
MAX_SECONDS = 12 * 3600  # one shift


@dataclass
class Session:
    id: str
    account: Account
    csrf: str
    created_at: float
    seen_at: float
    addresses: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def role(self) -> str:
        return self.account.role


class Sessions:
    def __init__(
        self,
        idle_s: float = IDLE_SECONDS,
        max_s: float = MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.max_s = max_s
        self._clock = clock
        self._by_id: dict[str, Session] = {}

    def open(self, account: Account) -> Session:
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), account, secrets.token_urlsafe(32), now, now)
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id (its idle time restarts); None if unknown or expired."""
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.seen_at > self.idle_s or now - session.created_at > self.max_s:
            del self._by_id[session_id]
            return None
        session.seen_at = now
        return session

    def close(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)

    def close_account(self, name: str) -> int:
        """End every session of `name` (its password changed or it was removed); how many."""
        gone = [sid for sid, s in self._by_id.items() if s.name == name]
        for sid in gone:
            del self._by_id[sid]
        return len(gone)

    def live(self) -> list[Session]:
        now = self._clock()
        return [s for s in self._by_id.values() if now - s.seen_at <= self.idle_s and now - s.created_at <= self.max_s]


def csrf_ok(session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf.encode(), (token or "").encode())
