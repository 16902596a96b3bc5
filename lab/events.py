"""The controller's log read as structured events, for tests and lab tools.

In the lab the controller logs JSON lines (HOTLINE_LOG_FORMAT=json, set by
lab.processes.ControllerProcess): one object per event, `event` its name, the other keys as
logged. Tests match an event's name and keys instead of its rendered text, so a change of
renderer or key order cannot make a wait pass or fail by accident.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def parse_events(data: bytes | str) -> list[dict[str, Any]]:
    """Every JSON object line of `data` that names an event; other lines (a traceback's) are skipped."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    events: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:  # a line cut short by a kill, or not ours
            continue
        if isinstance(obj, dict) and "event" in obj:
            events.append(obj)
    return events


def matching(events: Iterable[dict[str, Any]], name: str, **keys: Any) -> list[dict[str, Any]]:
    """The events called `name` whose keys include `keys` (equal values)."""
    return [e for e in events if e.get("event") == name and all(e.get(k) == v for k, v in keys.items())]
