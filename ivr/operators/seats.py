"""The operators' seats as routes.yaml declares them: configuration, not queue state.

The routing table (ivr.routing.routes) parses `operators.seats` into these; the runtime queue
(ivr.operators.queue) takes them and keeps each seat's state. Kept apart so the parser does not
depend on the queue.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Seat:
    """One operator position; `name` identifies it across routes.yaml reloads."""

    name: str
    dial_string: str  # e.g. "PJSIP/8001@operator-1"
