"""The hotline's clock: local wall time in the city's zone, injectable for tests and drills.

Business hours, holidays and batch dates are all local (Asia/Shanghai) wall time, while the
machine may run in UTC. `HOTLINE_CLOCK_START=2026-11-24T10:00` starts the clock at that local
time and lets it run on from there — how the tests place calls "on a Tuesday morning" or
"at night" against a real Asterisk, and how an operator rehearses a batch going live.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Mapping
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def local_clock(start: dt.datetime | None = None) -> Callable[[], dt.datetime]:
    """A clock returning naive local time; from `start` (naive local) on if given."""
    if start is None:
        return lambda: dt.datetime.now(LOCAL_TZ).replace(tzinfo=None)
    origin = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - origin)


def to_local(at: dt.datetime) -> dt.datetime:
    """Naive local time for `at`: an aware time is converted, a naive one is local already."""
    return at if at.tzinfo is None else at.astimezone(LOCAL_TZ).replace(tzinfo=None)


def clock_start(env: Mapping[str, str] | None = None) -> dt.datetime | None:
    """HOTLINE_CLOCK_START as naive local time (None when unset); ValueError when it is no date-time."""
    text = (os.environ if env is None else env).get("HOTLINE_CLOCK_START")
    if not text:
        return None
    try:
        return to_local(dt.datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"HOTLINE_CLOCK_START must be an ISO date-time, got {text!r}") from None


def now(env: Mapping[str, str] | None = None) -> dt.datetime:
    """What the controller's clock says now, for commands run beside it: Beijing time whatever the
    host's zone, or HOTLINE_CLOCK_START when set (a drill's CLI sees the drill's time)."""
    return local_clock(clock_start(env))()
