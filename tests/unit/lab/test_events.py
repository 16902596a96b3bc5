"""Tests read the controller's log as events (name + keys), never as rendered text."""

from __future__ import annotations

from lab.events import matching, parse_events

LOG = b"""{"event": "controller_starting", "interrupted_calls": 1, "level": "info"}
Traceback (most recent call last):
{"event": "dial_result", "status": "ANSWER", "call_id": "a1"}
{"event": "dial_result", "status": "BUSY", "call_id": "b2"}
{"event": "dial_res
"""


def test_json_lines_are_events_and_everything_else_is_skipped() -> None:
    events = parse_events(LOG)

    assert [e["event"] for e in events] == ["controller_starting", "dial_result", "dial_result"]


def test_events_match_on_name_and_keys() -> None:
    events = parse_events(LOG)

    assert len(matching(events, "dial_result")) == 2
    assert [e["call_id"] for e in matching(events, "dial_result", status="ANSWER")] == ["a1"]
    assert matching(events, "controller_starting", interrupted_calls=1)
    assert not matching(events, "controller_starting", interrupted_calls=2)
    assert not matching(events, "dial_result", missing_key="x")
