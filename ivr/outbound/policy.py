"""When the hotline may call a citizen, and how often it tries (routes.yaml `outbound:`).

Pure: the runner asks `allowed(now)` and `due(attempts, last_attempt_at, now)`; nothing here reads a
clock. Attempts are bounded (`max_attempts` per callback entry and per closed ticket) and spaced by
`backoff_minutes`: the wait before the 2nd attempt, the 3rd, ...; the last value repeats.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ivr.routing.hours import Hours


@dataclass(frozen=True)
class OutboundPolicy:
    endpoint: str  # the PJSIP endpoint of the trunk citizens are dialled over (the carrier)
    hours: Hours  # only inside these (official calendar) hours
    ring_seconds: int = 30
    max_attempts: int = 3
    backoff_minutes: tuple[int, ...] = (10, 30)
    poll_seconds: int = 10  # how often the lists are looked at
    first_after_minutes: int = 5  # a missed caller often calls again at once; a close may be undone at once

    def allowed(self, now: dt.datetime) -> bool:
        """May a citizen be called at local time `now`?"""
        return self.hours.is_open(now)

    def due(self, attempts: int, last_attempt_at: float | None, now: float, since: float) -> bool:
        """Is another attempt due, after `attempts` made (the last at `last_attempt_at`), for something that
        happened at `since` (the missed call, the close)? Unix seconds."""
        if attempts >= self.max_attempts:
            return False
        if attempts == 0 or last_attempt_at is None:
            return now >= since + self.first_after_minutes * 60
        wait = self.backoff_minutes[min(attempts, len(self.backoff_minutes)) - 1] * 60
        return now >= last_attempt_at + wait

    def dial_string(self, number: str) -> str:
        return f"PJSIP/{number}@{self.endpoint}"
