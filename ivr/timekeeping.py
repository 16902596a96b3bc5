"""The hotline's clock: local wall time in the city's zone, injectable for tests and drills.

Business hours, holidays and batch dates are all local (Asia/Shanghai) wall time, while the
machine may run in UTC. `HOTLINE_CLOCK_START=2026-11-24T10:00` starts the clock at that local
time and lets it run on from there — how the tests place calls "on a Tuesday morning" or
"at night" against a real Asterisk, and how an operator rehearses a batch going live.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def local_clock(start: dt.datetime | None = None) -> Callable[[], dt.datetime]:
    """A clock returning naive local time; from `start` (naive local) on if given."""
    if start is None:
        return lambda: dt.datetime.now(LOCAL_TZ).replace(tzinfo=None)
    origin = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - origin)
